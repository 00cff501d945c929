//! A test hook: SQLite's own "disk full" (`PRAGMA max_page_count`) on every
//! connection handed out for one database file, so that a test can fill
//! the disk under a daemon running in its process and give the space back.
//! Production never sets one: the hook costs one atomic load per
//! connection handed out.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static ANY: AtomicBool = AtomicBool::new(false);
/// The page limit of each database a test limited (`u32::MAX` once lifted:
/// connections already limited must get the limit lifted too).
static LIMITS: Mutex<Vec<(PathBuf, u32)>> = Mutex::new(Vec::new());

/// Test only: limits the database at `path` to `pages` pages (`None`
/// lifts the limit). A limit below the file's size leaves it at the
/// file's size: no page can be added. Applies to each connection as it is
/// next handed out.
#[doc(hidden)]
pub fn limit_pages_for_tests(path: &Path, pages: Option<u32>) {
    let pages = pages.unwrap_or(u32::MAX);
    let mut limits = LIMITS.lock().unwrap_or_else(|e| e.into_inner());
    match limits.iter_mut().find(|(p, _)| p == path) {
        Some((_, n)) => *n = pages,
        None => limits.push((path.to_path_buf(), pages)),
    }
    ANY.store(true, Ordering::Release);
}

/// The page limit a test set for `path`, if any.
pub(super) fn limit_of(path: &Path) -> Option<u32> {
    if !ANY.load(Ordering::Acquire) {
        return None;
    }
    let limits = LIMITS.lock().unwrap_or_else(|e| e.into_inner());
    limits.iter().find(|(p, _)| p == path).map(|(_, n)| *n)
}
