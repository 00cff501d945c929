//! The limiter on a manual clock: bursts, foreground calls before background ones, 429 pauses.

use super::*;

fn limiter(per_minute: u32, burst: u32, clock: &Clock) -> Limiter {
    Limiter::new(
        NonZeroU32::new(per_minute).unwrap(),
        NonZeroU32::new(burst).unwrap(),
        clock.clone(),
        None,
    )
}

#[tokio::test]
async fn burst_then_one_cell_per_interval() {
    let clock = Clock::manual(1_000_000);
    let l = std::sync::Arc::new(limiter(60, 2, &clock));
    l.acquire().await.unwrap();
    l.acquire().await.unwrap();
    let l2 = l.clone();
    let third = tokio::spawn(async move { l2.acquire().await });
    tokio::task::yield_now().await;
    assert!(!third.is_finished());
    clock.advance(Duration::from_millis(999));
    tokio::task::yield_now().await;
    assert!(!third.is_finished());
    clock.advance(Duration::from_millis(1));
    tokio::time::timeout(Duration::from_secs(1), third)
        .await
        .expect("third call went through once a second passed")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn foreground_calls_go_before_waiting_background_calls() {
    let clock = Clock::manual(1_000_000);
    let l = std::sync::Arc::new(limiter(60, 1, &clock));
    l.acquire().await.unwrap(); // the burst is spent: the next cell in 1 s
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let spawn = |name: &'static str, background: bool| {
        let (l, order) = (l.clone(), order.clone());
        tokio::spawn(async move {
            let call = async {
                l.acquire().await.unwrap();
                order.lock().unwrap().push(name);
            };
            if background {
                in_background(call).await
            } else {
                call.await
            }
        })
    };
    let background: Vec<_> = (0..3).map(|_| spawn("background", true)).collect();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let foreground = spawn("foreground", false);
    tokio::task::yield_now().await;
    for _ in 0..4 {
        clock.advance(Duration::from_secs(1));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }
    foreground.await.unwrap();
    for b in background {
        b.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(order.len(), 4);
    assert_eq!(order[0], "foreground", "{order:?}");
}

#[tokio::test]
async fn pause_fails_fast_and_ends() {
    let clock = Clock::manual(5_000);
    let l = limiter(600, 10, &clock);
    l.pause(Duration::from_secs(30));
    l.pause(Duration::from_secs(5)); // a shorter pause does not shorten it
    assert_eq!(l.paused_until(), Some(35_000));
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        l.acquire().await,
        Err(ProviderError::RateLimited {
            retry_after: Duration::from_secs(20)
        })
    );
    clock.advance(Duration::from_secs(20));
    assert_eq!(l.paused_until(), None);
    l.acquire().await.unwrap();
}
