//! The store's health. A failed fsync or a data directory deleted or replaced under the
//! running broker is a state of the broker, not a dead thread: from then on nothing is
//! confirmed as durable (persistent publishes to durable queues are nacked, waiting
//! confirms become a 541 connection error, durable declares are refused), the disk alarm
//! blocks publishers, and `/api/nodes` and `/metrics` show why.
//!
//! The failure is sticky until a restart: after a failed fsync the kernel may have dropped
//! the dirty pages, so a later fsync that succeeds proves nothing about them (PostgreSQL's
//! "fsyncgate"); a restart recovers from what is really on disk.
//!
//! The data directory is held open and locked for the broker's lifetime (one broker per
//! directory, whatever happens to files inside it), and its identity (device, inode) is
//! checked against its path before every group-commit round and by the alarm sampler.
//!
//! A full disk is not a failure. The file `reserve` holds [`RESERVE_BYTES`] for the small
//! records that let consumers drain a full disk (delivered and settled marks): a mark that
//! meets ENOSPC releases a chunk of it and is written in that space; it grows back once
//! the disk has room again. Acks free whole segments, so a little reserve goes far.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Space held back for marks: ~250,000 of them, enough to drain and settle several
/// segments' worth of messages, whose deleted segments then free much more.
pub(crate) const RESERVE_BYTES: usize = 4 << 20;

/// What one full-disk write releases of the reserve.
const RESERVE_CHUNK: u64 = 256 << 10;

/// The data directory's identity, and why the store failed, if it did.
#[derive(Debug)]
pub(crate) struct StoreHealth {
    path: PathBuf,
    /// (device, inode) of the directory when it was opened.
    identity: (u64, u64),
    failed: AtomicBool,
    /// The first failure's description (later ones add nothing a restart needs).
    reason: Mutex<Option<String>>,
    /// Tests only: fault injection applies to this store (its path names a failpoint).
    pub(crate) inject: bool,
    /// The reserve file's size as the store last set it (None until first looked at):
    /// take and release go through this lock, so two queues meeting a full disk at once
    /// release two chunks, and a sampler that finds the reserve whole makes no syscall.
    reserve: Mutex<Option<u64>>,
}

impl StoreHealth {
    /// Open and lock `dir` (which exists). The handle comes back beside the health: the
    /// store holds it (flock'ed, so the lock cannot be lost by deleting a file in the
    /// directory) and lets it go the moment it is dropped, while the sync thread that
    /// shares the health may still be finishing its last round.
    pub(crate) fn open(dir: &Path) -> io::Result<(StoreHealth, File)> {
        let handle = File::open(dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open data directory {}: {e}", dir.display()),
            )
        })?;
        if let Err(e) = handle.try_lock() {
            return Err(io::Error::other(format!(
                "data directory {} is in use by another rmq serve ({e}); stop it or pick another --data-dir",
                dir.display()
            )));
        }
        let meta = handle.metadata()?;
        let health = StoreHealth {
            path: dir.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
            failed: AtomicBool::new(false),
            reason: Mutex::new(None),
            inject: dir.to_string_lossy().contains("failpoint-"),
            reserve: Mutex::new(None),
        };
        Ok((health, handle))
    }

    fn reserve_path(&self) -> PathBuf {
        self.path.join("reserve")
    }

    /// Fill the reserve up to [`RESERVE_BYTES`] where there is room. A reserve that is
    /// part used stays as it is otherwise: it survives restarts, so a broker restarted on
    /// a full disk still has what is left of it.
    pub(crate) fn take_reserve(&self) {
        if !self.ok() {
            return;
        }
        let mut reserve = self.reserve.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.reserve_path();
        let have = *reserve.get_or_insert_with(|| std::fs::metadata(&path).map_or(0, |m| m.len()));
        let want = RESERVE_BYTES as u64;
        if have >= want {
            return;
        }
        let grown = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| {
                use std::io::Write;
                f.write_all(&vec![0u8; (want - have) as usize])?;
                f.sync_all()
            });
        *reserve = Some(if grown.is_ok() {
            want
        } else {
            // No room: give back the part written, keep what was there.
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
                let _ = f.set_len(have);
            }
            have
        });
    }

    /// Give a part of the reserve back to the filesystem; true if that freed space.
    pub(crate) fn release_reserve(&self) -> bool {
        let mut reserve = self.reserve.lock().unwrap_or_else(|e| e.into_inner());
        let have = reserve.unwrap_or(0);
        if have == 0 {
            return false;
        }
        let keep = have.saturating_sub(RESERVE_CHUNK);
        let freed = std::fs::OpenOptions::new()
            .write(true)
            .open(self.reserve_path())
            .and_then(|f| f.set_len(keep))
            .is_ok();
        if freed {
            *reserve = Some(keep);
            tracing::error!(
                "the disk of {} is full: released {} KiB of the space reserved for acknowledgements ({} KiB left)",
                self.path.display(),
                (have - keep) >> 10,
                keep >> 10
            );
        }
        freed
    }

    /// Whether everything written can still be made durable.
    pub(crate) fn ok(&self) -> bool {
        !self.failed.load(Ordering::Acquire)
    }

    /// Why the store failed, if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        if self.ok() {
            return None;
        }
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Enter the failed state (once; the first reason is kept and logged loudly).
    pub(crate) fn fail(&self, why: impl std::fmt::Display) {
        let mut reason = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if reason.is_none() {
            let text = why.to_string();
            tracing::error!(
                "STORAGE FAILURE: {text}. Nothing more is confirmed as durable: persistent \
                 publishes are refused, durable declares fail and the disk alarm is on. \
                 Restart rmq serve once the disk is fixed; it recovers from what is on disk."
            );
            *reason = Some(text);
            self.failed.store(true, Ordering::Release);
        }
    }

    /// The error for what needs durability while failed.
    pub(crate) fn error(&self) -> io::Error {
        io::Error::other(
            self.failure()
                .unwrap_or_else(|| "the data directory failed".to_string()),
        )
    }

    /// Check that the directory at our path is still the one we hold; fail otherwise.
    /// Returns whether the store is healthy.
    pub(crate) fn check_dir(&self) -> bool {
        if !self.ok() {
            return false;
        }
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.identity => true,
            Ok(_) => {
                self.fail(format_args!(
                    "data directory {} was replaced while rmq serve ran",
                    self.path.display()
                ));
                false
            }
            Err(e) => {
                self.fail(format_args!(
                    "data directory {} is gone ({e}): deleted while rmq serve ran",
                    self.path.display()
                ));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_or_replaced_directory_fails_the_store_for_good() {
        let dir = std::env::temp_dir().join(format!("rmq-health-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (health, _lock) = StoreHealth::open(&dir).unwrap();
        assert!(health.check_dir());
        // A second opener is refused while the first holds the directory.
        assert!(StoreHealth::open(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!health.check_dir(), "replaced: another inode");
        assert!(health.failure().unwrap().contains("replaced"));
        // Sticky: the path exists again, the failure stays.
        assert!(!health.check_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
