//! Which grants the budget keeps warm: the projected need, and the cut in
//! the order of last hand-out below which grants lapse.
//!
//! The order is kept coarsely, in recency classes (10 s wide for the last
//! hour, a minute for the last day, an hour for the last year, then one
//! for older and one for never), each holding the need of its grants. The
//! cut is the first class that does not fit in the budget whole: every
//! grant before it is warm, and of the cut class as many as the rest of the
//! budget covers; every grant after it lapses. The warm set never needs
//! more than the budget. A walk over a million grants adds to a few
//! thousand sums, with no sort.
//!
//! Within the cut class the grants the last round kept warm go first, then
//! lapsed ones fill what is left, so the same ones stay warm. (Table order
//! is no tie-break: the cache's map may rehash a shard when an entry is
//! replaced, and each newly chosen grant would be refreshed at once.)

use crate::config::RefreshConfig;

const HOUR_CLASSES: usize = 360;
const DAY_CLASSES: usize = 1_380;
const YEAR_CLASSES: usize = 8_784;
const OLDER: usize = HOUR_CLASSES + DAY_CLASSES + YEAR_CLASSES;
const NEVER: usize = OLDER + 1;
const CLASSES: usize = NEVER + 1;

/// The recency class of a grant last handed out at `handed_out` (Unix
/// seconds, 0 for never) as seen at `now`: lower is more recent.
pub fn class(now: u32, handed_out: u32) -> usize {
    if handed_out == 0 {
        return NEVER;
    }
    let age = now.saturating_sub(handed_out) as usize;
    match age {
        a if a < 3_600 => a / 10,
        a if a < 86_400 => HOUR_CLASSES + (a - 3_600) / 60,
        a if a < 86_400 + 3_600 * YEAR_CLASSES => HOUR_CLASSES + DAY_CLASSES + (a - 86_400) / 3_600,
        _ => OLDER,
    }
}

/// Calls a minute one grant needs: one per refresh interval, its token's
/// lifetime less the lead it is refreshed with (`schedule::due_at`, with
/// the jitter's mean). A grant without a token needs one call, once:
/// nothing a minute.
pub fn calls_per_minute(lifetime_secs: u32, cfg: &RefreshConfig) -> f64 {
    if lifetime_secs == 0 {
        return 0.0;
    }
    let lifetime = f64::from(lifetime_secs);
    let lead = (cfg.min_lead_secs as f64)
        .max(cfg.lead_fraction * lifetime)
        .min(lifetime / 2.0);
    let jitter = cfg.jitter_fraction * lifetime / 2.0;
    60.0 / (lifetime - lead - jitter).max(1.0)
}

/// One provider's projected need, by recency class.
#[derive(Debug, Clone)]
pub struct Demand {
    by_class: Vec<f64>,
    /// The part of each class's need that the last round kept warm.
    warm_by_class: Vec<f64>,
    total: f64,
}

impl Default for Demand {
    fn default() -> Self {
        Demand {
            by_class: vec![0.0; CLASSES],
            warm_by_class: vec![0.0; CLASSES],
            total: 0.0,
        }
    }
}

impl Demand {
    /// Counts a grant of `class` needing `calls_per_minute`, kept warm by
    /// the last round (`was_warm`) or not.
    pub fn add(&mut self, class: usize, calls_per_minute: f64, was_warm: bool) {
        let class = class.min(CLASSES - 1);
        self.by_class[class] += calls_per_minute;
        if was_warm {
            self.warm_by_class[class] += calls_per_minute;
        }
        self.total += calls_per_minute;
    }

    /// Calls a minute to keep every grant warm.
    pub fn total(&self) -> f64 {
        self.total
    }

    /// Where `budget` calls a minute end; `None` when it covers every grant.
    pub fn cut(&self, budget: f64) -> Option<Cut> {
        if self.total <= budget {
            return None;
        }
        let mut sum = 0.0;
        for (class, need) in self.by_class.iter().enumerate() {
            if sum + need > budget {
                let left = budget - sum;
                // Sums of many small needs round; without some slack the
                // last of the warm ones could fall out by a rounding error.
                let slack = 1e-9 * budget.max(1.0);
                return Some(Cut {
                    class,
                    warm_left: left,
                    lapsed_left: left - self.warm_by_class[class],
                    slack,
                });
            }
            sum += need;
        }
        // Rounding: the classes summed to no more than the budget after all.
        None
    }
}

/// Where a budget ends in the order of last hand-out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cut {
    /// Classes before it are warm, classes after it lapse.
    pub class: usize,
    /// Calls a minute left for grants of the cut class that the last
    /// round kept warm: they go first.
    pub warm_left: f64,
    /// Calls a minute left for the cut class's lapsed grants: what the
    /// warm ones leave once they all fit (nothing when they do not).
    pub lapsed_left: f64,
    /// Tolerance for the rounding of the sums.
    slack: f64,
}

impl Cut {
    /// Nothing is kept warm (`on_demand`).
    pub const ALL: Cut = Cut {
        class: 0,
        warm_left: 0.0,
        lapsed_left: 0.0,
        slack: 0.0,
    };

    /// Whether a grant of `class` needing `need` calls a minute lapses; one
    /// of the cut class that fits takes its share of what is left, the
    /// grants the last round kept warm (`was_warm`) before the others.
    pub fn lapses(&mut self, class: usize, need: f64, was_warm: bool) -> bool {
        if class != self.class {
            return class > self.class;
        }
        let left = if was_warm {
            &mut self.warm_left
        } else {
            &mut self.lapsed_left
        };
        if need <= *left + self.slack {
            *left -= need;
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RefreshConfig {
        RefreshConfig {
            lead_fraction: 0.2,
            min_lead_secs: 300,
            jitter_fraction: 0.05,
            max_lifetime_secs: 86400,
            max_concurrency: 16,
            retry_initial_secs: 1.0,
            retry_max_secs: 300.0,
            force_refresh_min_interval_secs: 10,
            handout_margin_ms: 1_000,
            handout_wait_ms: 2_000,
        }
    }

    #[test]
    fn classes_order_by_recency_and_never_comes_last() {
        let now = 2_000_000_000;
        let ages = [0, 9, 10, 3_599, 3_600, 86_399, 86_400, 400 * 86_400];
        let classes: Vec<usize> = ages.iter().map(|a| class(now, now - a)).collect();
        assert_eq!(&classes[..3], &[0, 0, 1]);
        assert!(classes.windows(2).all(|w| w[0] <= w[1]), "{classes:?}");
        assert_eq!(classes[7], OLDER);
        assert_eq!(class(now, 0), NEVER);
        assert_eq!(
            class(now, now + 5),
            0,
            "a hand-out stamped after the scan began"
        );
        assert!(class(now, now - 366 * 86_400) < OLDER);
    }

    #[test]
    fn one_call_per_lifetime_less_the_lead() {
        let exact = RefreshConfig {
            jitter_fraction: 0.0,
            ..cfg()
        };
        // One hour: lead max(300 s, 720 s) = 720 s, a call every 48 minutes.
        assert!((calls_per_minute(3600, &exact) - 1.0 / 48.0).abs() < 1e-12);
        // Jitter moves refreshes earlier by half of up to 5 % on average.
        assert!((calls_per_minute(3600, &cfg()) - 60.0 / (3600.0 - 720.0 - 90.0)).abs() < 1e-12);
        // Two minutes: the lead is capped at half the lifetime.
        assert!((calls_per_minute(120, &exact) - 1.0).abs() < 1e-12);
        assert_eq!(calls_per_minute(0, &cfg()), 0.0);
    }

    #[test]
    fn the_cut_keeps_the_most_recent_grants_within_the_budget() {
        let now = 2_000_000_000;
        let per = calls_per_minute(3600, &cfg());
        let mut d = Demand::default();
        // 100 grants handed out in the last minute, 100 an hour ago, 10,000 never.
        for i in 0..100 {
            d.add(class(now, now - i % 60), per, true);
            d.add(class(now, now - 3_700), per, true);
        }
        for _ in 0..10_000 {
            d.add(class(now, 0), per, true);
        }
        assert!((d.total() - 10_200.0 * per).abs() < 1e-6);
        assert_eq!(d.cut(d.total()), None, "a budget that covers all");
        assert_eq!(d.cut(1_000_000.0), None);
        // Enough for 150: the hundred recent ones and half of the hour-old ones.
        let mut cut = d.cut(150.0 * per + 1e-9).unwrap();
        assert_eq!(cut.class, class(now, now - 3_700));
        assert!(!cut.lapses(class(now, now - 59), per, true));
        let hour_old = (0..100).filter(|_| !cut.lapses(class(now, now - 3_700), per, true));
        assert_eq!(hour_old.count(), 50);
        assert!(cut.lapses(class(now, 0), per, true));
        // Enough for 250: both hundreds and 50 of the never handed out.
        let mut cut = d.cut(250.0 * per + 1e-9).unwrap();
        assert_eq!(cut.class, NEVER);
        assert_eq!(
            (0..10_000)
                .filter(|_| !cut.lapses(NEVER, per, true))
                .count(),
            50
        );
        // Not even one grant fits: nothing is warm.
        let mut cut = d.cut(0.5 * per).unwrap();
        assert_eq!(cut.class, 0);
        assert!(cut.lapses(0, per, true));
        let mut all = Cut::ALL;
        assert!(all.lapses(0, per, true) && all.lapses(NEVER, per, false));
    }

    /// The cut class's grants in one walk order or another: which of them
    /// are kept warm when `was_warm` of them were before.
    fn kept(budget: f64, was_warm: &[usize], order: impl Iterator<Item = usize>) -> Vec<usize> {
        let per = calls_per_minute(3600, &cfg());
        let mut d = Demand::default();
        for i in 0..10 {
            d.add(NEVER, per, was_warm.contains(&i));
        }
        let mut cut = d.cut(budget * per + 1e-9).unwrap();
        let mut warm: Vec<usize> = order
            .filter(|i| !cut.lapses(NEVER, per, was_warm.contains(i)))
            .collect();
        warm.sort();
        warm
    }

    #[test]
    fn within_the_cut_class_the_grants_kept_warm_stay_warm_whatever_the_walk_order() {
        // Room for five: the four warm ones stay, one lapsed one joins them.
        let warm = [6, 7, 8, 9];
        assert_eq!(kept(5.0, &warm, 0..10), [0, 6, 7, 8, 9]);
        assert_eq!(kept(5.0, &warm, (0..10).rev()), [5, 6, 7, 8, 9]);
        // Room for exactly the warm ones: the same four, in either order.
        assert_eq!(kept(4.0, &warm, 0..10), warm);
        assert_eq!(kept(4.0, &warm, (0..10).rev()), warm);
        // Room for fewer: only warm ones, no lapsed one takes a place.
        let fewer = kept(3.0, &warm, (0..10).rev());
        assert_eq!(fewer.len(), 3);
        assert!(fewer.iter().all(|i| warm.contains(i)), "{fewer:?}");
        // A thousand hour-long grants summed in another order than taken:
        // rounding does not push the last warm one out.
        let per = calls_per_minute(3600, &cfg());
        let mut d = Demand::default();
        let needs: Vec<f64> = (0..1000)
            .map(|i| per * (1.0 + f64::from(i % 7) / 3.0))
            .collect();
        d.add(0, 1.0, true);
        for n in &needs {
            d.add(NEVER, *n, true);
        }
        let budget = 1.0 + needs.iter().rev().sum::<f64>() - 1e-12;
        let mut cut = d.cut(budget).unwrap();
        assert!(needs.iter().all(|n| !cut.lapses(NEVER, *n, true)));
    }
}
