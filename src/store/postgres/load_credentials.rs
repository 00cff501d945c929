//! Every credential, read once at the start of the full load (in its
//! snapshot) and kept by grant until the grants have been read.
//!
//! Looking up each page's credentials by grant instead cost an index
//! descent per grant: at a million, two thirds of the server's time at
//! start. One sequential read of the table costs a fraction of that; its
//! rows come in the table's order, so they are sorted here. They are kept as
//! they arrived (the id and extras fields of the COPY row, about 20 bytes)
//! and parsed only when their grant is: some 35 MB at a million, against
//! three times that as strings and maps, in allocations sized once from the
//! table's statistics (grown by doubling, they left as much again freed).

use super::binary::Cursor;
use crate::model::CredentialExtras;
use crate::store::StoreError;
use crate::store::rows::parse_extras;

/// Fields of a credential row: its grant, its id, its extras.
pub(super) const FIELDS: u16 = 3;

/// The credentials by grant.
#[derive(Default)]
pub(super) struct Credentials {
    /// By grant and then credential id once [`finish`](Self::finish)ed.
    by_grant: Vec<Entry>,
    /// The id and extras fields of every credential, as COPY sent them.
    fields: Vec<u8>,
    /// Where each range of grant ids starts in `by_grant`.
    directory: Directory,
}

/// A credential's grant, and where its id and extras fields start in
/// `fields`: 12 bytes, not the 16 of a tuple.
#[derive(Clone, Copy)]
#[repr(C, packed(4))]
struct Entry {
    grant: i64,
    at: u32,
}

/// Ranges of grant ids (equal parts of the lowest to the highest), each to
/// where its grants start in the sorted credentials: a lookup searches a
/// few entries instead of all of them. A binary search over a million took
/// twenty reads scattered over 16 MB, each a miss of the CPU's cache: a
/// fifth of the load's time.
#[derive(Default)]
struct Directory {
    low: i64,
    /// The highest grant id less the lowest, plus one.
    span: u128,
    /// Where each range starts, and the end of the last.
    starts: Vec<usize>,
}

impl Directory {
    /// The range `grant` falls in, if any.
    fn range_of(&self, grant: i64) -> Option<usize> {
        let offset = u128::try_from(i128::from(grant) - i128::from(self.low)).ok()?;
        let ranges = self.starts.len().checked_sub(1)? as u128;
        (offset < self.span).then(|| (offset * ranges / self.span) as usize)
    }
}

impl Credentials {
    /// Room for about `credentials` credentials.
    pub(super) fn with_capacity(credentials: usize) -> Credentials {
        Credentials {
            by_grant: Vec::with_capacity(credentials),
            // 4-byte lengths, an id of a dozen characters, `{}`.
            fields: Vec::with_capacity(credentials * 24),
            directory: Directory::default(),
        }
    }

    /// Adds the credential rows in `data` (COPY data past its header).
    pub(super) fn add(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let mut rows = Cursor(data);
        while rows.row(FIELDS)? {
            let grant = rows.int8()?;
            let start = rows.0;
            // Checked here, so that reading them back cannot fail but on extras.
            rows.text()?;
            rows.text()?;
            let kept = &start[..start.len() - rows.0.len()];
            let at = u32::try_from(self.fields.len()).map_err(|_| {
                StoreError::Corrupt("loading grants: over 4 GiB of credentials".into())
            })?;
            self.by_grant.push(Entry { grant, at });
            self.fields.extend_from_slice(kept);
        }
        Ok(())
    }

    /// Orders the credentials by grant, then id (byte order, as the ids'
    /// `COLLATE "C"` and every other read of a grant's credentials).
    pub(super) fn finish(mut self) -> Credentials {
        let fields = &self.fields;
        let id = |at: u32| Cursor(&fields[at as usize..]).text().unwrap_or_default();
        self.by_grant.sort_unstable_by(|a, b| {
            let (a, b) = (*a, *b);
            let (ga, gb) = (a.grant, b.grant);
            ga.cmp(&gb).then_with(|| id(a.at).cmp(id(b.at)))
        });
        if let (Some(first), Some(last)) = (self.by_grant.first(), self.by_grant.last()) {
            // A few credentials to a range, on average.
            let ranges = (self.by_grant.len() / 8).next_power_of_two();
            let (first, last) = (first.grant, last.grant);
            let mut directory = Directory {
                low: first,
                span: (i128::from(last) - i128::from(first)) as u128 + 1,
                starts: vec![0; ranges + 1],
            };
            let mut at = 0;
            for range in 0..ranges {
                while at < self.by_grant.len()
                    && directory.range_of(self.by_grant[at].grant) < Some(range)
                {
                    at += 1;
                }
                directory.starts[range] = at;
            }
            directory.starts[ranges] = self.by_grant.len();
            self.directory = directory;
        }
        self
    }

    /// The credentials of `grant`, in id order.
    pub(super) fn of(&self, grant: i64) -> Result<Vec<CredentialExtras>, StoreError> {
        let Some(range) = self.directory.range_of(grant) else {
            return Ok(Vec::new());
        };
        let starts = &self.directory.starts;
        let candidates = &self.by_grant[starts[range]..starts[range + 1]];
        let first = candidates.partition_point(|c| c.grant < grant);
        let mut out = Vec::with_capacity(1);
        for c in candidates[first..].iter().take_while(|c| c.grant == grant) {
            let mut fields = Cursor(&self.fields[c.at as usize..]);
            out.push(CredentialExtras {
                id: fields.text()?.to_owned(),
                extras: parse_extras(fields.text()?)?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::Credentials;

    fn row(grant: i64, id: &str, extras: &str) -> Vec<u8> {
        let mut out = 3i16.to_be_bytes().to_vec();
        out.extend(8i32.to_be_bytes());
        out.extend(grant.to_be_bytes());
        for text in [id, extras] {
            out.extend((text.len() as i32).to_be_bytes());
            out.extend(text.as_bytes());
        }
        out
    }

    #[test]
    fn credentials_come_back_by_grant_in_id_order() {
        let mut data = Vec::new();
        for (grant, id, extras) in [
            (5, "b", "{}"),
            (-3, "x", "{}"),
            (5, "a", r#"{"k":1}"#),
            (5, "B", "{}"),
        ] {
            data.extend(row(grant, id, extras));
        }
        let mut credentials = Credentials::default();
        let (one, two) = data.split_at(row(5, "b", "{}").len());
        credentials.add(one).unwrap();
        credentials.add(two).unwrap();
        let credentials = credentials.finish();
        let ids = |g| -> Vec<String> {
            credentials
                .of(g)
                .unwrap()
                .into_iter()
                .map(|c| c.id)
                .collect()
        };
        assert_eq!(ids(5), ["B", "a", "b"]);
        assert_eq!(ids(-3), ["x"]);
        assert!(ids(4).is_empty() && ids(6).is_empty() && ids(i64::MIN).is_empty());
        assert_eq!(credentials.of(5).unwrap()[1].extras["k"], 1);
    }

    #[test]
    fn every_grant_finds_its_credentials_whatever_the_spread_of_ids() {
        let spreads: [Vec<i64>; 4] = [
            (0..1000).collect(),
            (0..1000)
                .map(|i| i * 9_000_000_000_000_000 / 1000)
                .collect(),
            vec![i64::MIN, -1, 0, 1, i64::MAX],
            (0..1000)
                .map(|i| if i < 990 { i } else { i64::MAX - i })
                .collect(),
        ];
        for grants in spreads {
            let mut data = Vec::new();
            for (n, g) in grants.iter().enumerate() {
                for c in 0..(n % 3) {
                    data.extend(row(*g, &format!("{g}-{c}"), "{}"));
                }
            }
            let mut credentials = Credentials::default();
            credentials.add(&data).unwrap();
            let credentials = credentials.finish();
            for (n, g) in grants.iter().enumerate() {
                let found = credentials.of(*g).unwrap();
                let ids: Vec<String> = (0..(n % 3)).map(|c| format!("{g}-{c}")).collect();
                assert_eq!(found.into_iter().map(|c| c.id).collect::<Vec<_>>(), ids);
            }
            for absent in [i64::MIN + 1, i64::MAX - 1, -2, 1_000_001] {
                if !grants.contains(&absent) {
                    assert!(credentials.of(absent).unwrap().is_empty(), "{absent}");
                }
            }
        }
        assert!(Credentials::default().finish().of(1).unwrap().is_empty());
    }

    #[test]
    fn a_row_with_a_null_id_is_refused() {
        let mut data = 3i16.to_be_bytes().to_vec();
        data.extend(8i32.to_be_bytes());
        data.extend(1i64.to_be_bytes());
        data.extend((-1i32).to_be_bytes());
        data.extend(2i32.to_be_bytes());
        data.extend(b"{}");
        assert!(Credentials::default().add(&data).is_err());
    }
}
