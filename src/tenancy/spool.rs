//! The local record spool: call records that could not be written to the database wait here
//! as durable files, in order, until the database is back.
//!
//! Each record is one JSON file named by a sequence number (`00000000000000000042.json`),
//! written to a temporary name, fsynced, renamed into place and the directory fsynced, so a
//! crash leaves either the whole record or none. Files readable only by the owner, because
//! records contain phone numbers and transcripts. Records the database rejects for good move
//! to `failed/` for an operator to inspect.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::error::TenancyError;
use super::metrics;
use super::record::CallRecord;

const SUFFIX: &str = ".json";

/// A spool directory, locked by this process while the value lives.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    /// Exclusive lock on `dir/lock`: two processes appending to one spool would pick the same
    /// sequence numbers and overwrite each other's records.
    _lock: File,
    failed_dir: PathBuf,
    next_seq: AtomicU64,
    pending: AtomicUsize,
}

impl Spool {
    /// Opens (creating) the directory, removes half-written temporary files and counts the
    /// records waiting.
    pub fn open(dir: &str) -> Result<Spool, TenancyError> {
        let dir = PathBuf::from(if dir.is_empty() { "spool" } else { dir });
        let failed_dir = dir.join("failed");
        create_private_dir(&failed_dir)?;
        let lock = lock_directory(&dir)?;
        let mut max_seq = 0;
        let mut pending = 0;
        for entry in fs::read_dir(&dir).map_err(|err| io_error(&dir, err))? {
            let path = entry.map_err(|err| io_error(&dir, err))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.ends_with(".tmp") {
                // An append that crashed before its rename; the record was never acknowledged.
                let _ = fs::remove_file(&path);
            } else if let Some(seq) = sequence_of(name) {
                max_seq = max_seq.max(seq);
                pending += 1;
            }
        }
        metrics::SPOOL_PENDING.set(i64::try_from(pending).unwrap_or(i64::MAX));
        if pending > 0 {
            tracing::info!(dir = %dir.display(), pending, "spooled call records waiting");
        }
        Ok(Spool {
            dir,
            _lock: lock,
            failed_dir,
            next_seq: AtomicU64::new(max_seq + 1),
            pending: AtomicUsize::new(pending),
        })
    }

    /// Records waiting to be written.
    pub fn pending_count(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Appends a record durably; returns after the file and its directory entry are on disk.
    pub fn append(&self, record: &CallRecord) -> Result<PathBuf, TenancyError> {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.join(format!("{seq:020}{SUFFIX}"));
        write_durably(&path, record)?;
        self.pending.fetch_add(1, Ordering::SeqCst);
        metrics::SPOOL_PENDING.inc();
        metrics::RECORDS_SPOOLED.inc();
        Ok(path)
    }

    /// Keeps a record the database rejected for good in `failed/`.
    pub fn append_failed(&self, record: &CallRecord) -> Result<PathBuf, TenancyError> {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let path = self.failed_dir.join(format!("{seq:020}{SUFFIX}"));
        write_durably(&path, record)?;
        metrics::RECORDS_FAILED.inc();
        Ok(path)
    }

    /// Waiting record files, oldest first. The pending count is reset to the files found,
    /// because another process sharing the directory may have written or removed some.
    pub fn pending(&self) -> Result<Vec<PathBuf>, TenancyError> {
        let mut files: Vec<(u64, PathBuf)> = fs::read_dir(&self.dir)
            .map_err(|err| io_error(&self.dir, err))?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let path = entry.path();
                let seq = sequence_of(path.file_name()?.to_str()?)?;
                Some((seq, path))
            })
            .collect();
        files.sort();
        self.pending.store(files.len(), Ordering::SeqCst);
        metrics::SPOOL_PENDING.set(i64::try_from(files.len()).unwrap_or(i64::MAX));
        Ok(files.into_iter().map(|(_, path)| path).collect())
    }

    /// Reads one spooled record.
    pub fn read(&self, path: &Path) -> Result<CallRecord, TenancyError> {
        let bytes = fs::read(path).map_err(|err| io_error(path, err))?;
        serde_json::from_slice(&bytes).map_err(|err| TenancyError::Spool {
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, err),
        })
    }

    /// Deletes a record that reached the database.
    pub fn remove(&self, path: &Path) -> Result<(), TenancyError> {
        fs::remove_file(path).map_err(|err| io_error(path, err))?;
        self.forget_one();
        Ok(())
    }

    /// Moves a record that cannot be written (unreadable, or rejected by the database) to
    /// `failed/`.
    pub fn quarantine(&self, path: &Path) -> Result<(), TenancyError> {
        let name = path.file_name().unwrap_or_default();
        fs::rename(path, self.failed_dir.join(name)).map_err(|err| io_error(path, err))?;
        self.forget_one();
        metrics::RECORDS_FAILED.inc();
        Ok(())
    }

    fn forget_one(&self) {
        let _ = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        metrics::SPOOL_PENDING.set(i64::try_from(self.pending_count()).unwrap_or(i64::MAX));
    }
}

fn lock_directory(dir: &Path) -> Result<File, TenancyError> {
    let path = dir.join("lock");
    let file = private_file(&path, false).map_err(|err| io_error(&path, err))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(TenancyError::Spool {
            path: dir.display().to_string(),
            source: std::io::Error::other(
                "in use by another voicegate process; give each node its own database.spool_dir",
            ),
        }),
        Err(std::fs::TryLockError::Error(err)) => Err(io_error(&path, err)),
    }
}

fn sequence_of(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SUFFIX)?;
    if stem.len() != 20 {
        return None;
    }
    stem.parse().ok()
}

fn write_durably(path: &Path, record: &CallRecord) -> Result<(), TenancyError> {
    let bytes = serde_json::to_vec(record).map_err(|err| TenancyError::Spool {
        path: path.display().to_string(),
        source: std::io::Error::other(err),
    })?;
    let tmp = path.with_extension("tmp");
    let mut file = private_file(&tmp, true).map_err(|err| io_error(&tmp, err))?;
    file.write_all(&bytes).map_err(|err| io_error(&tmp, err))?;
    file.sync_all().map_err(|err| io_error(&tmp, err))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|err| io_error(path, err))?;
    // The rename is durable only once the directory entry is on disk.
    if let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(|err| io_error(parent, err))?;
    }
    Ok(())
}

fn private_file(path: &Path, truncate: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn create_private_dir(path: &Path) -> Result<(), TenancyError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).map_err(|err| io_error(path, err))
}

fn io_error(path: &Path, source: std::io::Error) -> TenancyError {
    TenancyError::Spool {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::tenancy::model::TenantId;

    fn record(call_id: &str) -> CallRecord {
        CallRecord {
            call_id: call_id.into(),
            tenant_id: TenantId(7),
            from: "+12025550142".into(),
            to: "+12025550100".into(),
            forwarded_from: String::new(),
            trunk: "loopback".into(),
            codec: "pcmu".into(),
            invite_at: Utc::now(),
            answer_at: None,
            end_at: Utc::now(),
            end_reason: "cancel".into(),
            sip_status: 487,
            cost_micros: 0,
            turns: vec![],
        }
    }

    fn open(dir: &tempfile::TempDir) -> Spool {
        Spool::open(dir.path().to_str().unwrap()).unwrap()
    }

    #[test]
    fn second_owner_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(&dir);
        let err = Spool::open(dir.path().to_str().unwrap()).unwrap_err();
        assert!(err.to_string().contains("in use by another"), "{err}");
        drop(first);
        assert!(
            Spool::open(dir.path().to_str().unwrap()).is_ok(),
            "free once closed"
        );
    }

    #[test]
    fn records_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(&dir);
        for i in 0..12 {
            spool.append(&record(&format!("call-{i}"))).unwrap();
        }
        assert_eq!(spool.pending_count(), 12);
        let ids: Vec<String> = spool
            .pending()
            .unwrap()
            .iter()
            .map(|path| spool.read(path).unwrap().call_id)
            .collect();
        let expected: Vec<String> = (0..12).map(|i| format!("call-{i}")).collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn reopen_continues_sequence() {
        let dir = tempfile::tempdir().unwrap();
        open(&dir).append(&record("first")).unwrap();
        let spool = open(&dir);
        assert_eq!(spool.pending_count(), 1);
        spool.append(&record("second")).unwrap();
        let ids: Vec<String> = spool
            .pending()
            .unwrap()
            .iter()
            .map(|path| spool.read(path).unwrap().call_id)
            .collect();
        assert_eq!(ids, vec!["first", "second"]);
    }

    #[test]
    fn half_written_files_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("00000000000000000009.tmp"), b"{\"call").unwrap();
        fs::write(dir.path().join("notes.txt"), b"operator notes").unwrap();
        let spool = open(&dir);
        assert_eq!(spool.pending_count(), 0);
        assert!(!dir.path().join("00000000000000000009.tmp").exists());
        assert!(dir.path().join("notes.txt").exists());
    }

    #[test]
    fn remove_and_quarantine_update_count() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(&dir);
        let first = spool.append(&record("a")).unwrap();
        let second = spool.append(&record("b")).unwrap();
        spool.remove(&first).unwrap();
        spool.quarantine(&second).unwrap();
        assert_eq!(spool.pending_count(), 0);
        assert!(spool.pending().unwrap().is_empty());
        assert_eq!(fs::read_dir(dir.path().join("failed")).unwrap().count(), 1);
    }

    #[test]
    fn listing_resyncs_count() {
        let dir = tempfile::tempdir().unwrap();
        let spool = open(&dir);
        let path = spool.append(&record("removed-by-hand")).unwrap();
        // An operator (or a crashed replay) removed the file behind the spool's back.
        fs::remove_file(path).unwrap();
        assert_eq!(spool.pending_count(), 1, "not looked yet");
        assert!(spool.pending().unwrap().is_empty());
        assert_eq!(spool.pending_count(), 0);
    }

    #[test]
    fn corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("00000000000000000001.json"), b"{not json").unwrap();
        let spool = open(&dir);
        let path = &spool.pending().unwrap()[0];
        assert!(spool.read(path).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = open(&dir).append(&record("p")).unwrap();
        let mode = fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
    }
}
