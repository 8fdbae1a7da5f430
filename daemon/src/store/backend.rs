//! Where the database lives. The seam is redb's own `StorageBackend`: the
//! file (production), redb's `InMemoryBackend` (nothing survives the
//! process), and a backend that wraps the file, or memory that outlives
//! the database (the fleet simulator's disk), and fails on command, the
//! way redb's own tests inject faults: an IO error at the N-th write or
//! at every N-th write, a failed fsync, a full disk.
//!
//! After an IO error redb refuses every further operation
//! (`StorageError::PreviousIo`) until the database is opened again; the
//! store reopens it in place (`Store::reopen`).

use std::fs::{File, OpenOptions};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redb::backends::{FileBackend, InMemoryBackend};
use redb::{BackendError, StorageBackend};

/// What the database is stored on.
#[derive(Debug, Clone)]
pub enum Medium {
    /// The file `outpost.redb` in this directory.
    File(PathBuf),
    /// Memory only; a reopen starts empty, so it is never reopened.
    Memory,
    /// The file in this directory, through a backend that fails as
    /// `faults` says.
    Faulty(PathBuf, Arc<Faults>),
    /// Memory that outlives every database opened on it, as a disk
    /// outlives a process (reopened, it holds what was written), failing
    /// as its faults say: the fleet simulator's storage.
    Simulated(Arc<SimulatedDisk>),
}

/// A disk in memory, for the simulator: shared by the databases opened on
/// it one after another.
#[derive(Debug)]
pub struct SimulatedDisk {
    memory: Arc<InMemoryBackend>,
    faults: Arc<Faults>,
    /// Set at a simulated crash: nothing written after it reaches the
    /// disk, so the database's clean shutdown (which runs as its handle is
    /// dropped) is lost, as in a real crash, and the next open repairs.
    crashed: Arc<AtomicBool>,
}

impl SimulatedDisk {
    pub fn new() -> Arc<Self> {
        Arc::new(SimulatedDisk {
            memory: Arc::new(InMemoryBackend::new()),
            faults: Faults::new(),
            crashed: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The machine stops: from now on nothing written reaches this disk,
    /// until [`SimulatedDisk::power_on`].
    pub fn crash(&self) {
        self.crashed.store(true, Ordering::SeqCst);
    }

    pub fn power_on(&self) {
        self.crashed.store(false, Ordering::SeqCst);
    }

    /// A backend over this disk, failing as its faults say.
    pub(super) fn backend(&self) -> FaultyBackend {
        let inner = SharedMemory { memory: self.memory.clone(), crashed: self.crashed.clone() };
        FaultyBackend { inner: Box::new(inner), faults: self.faults.clone() }
    }
}

/// redb's memory backend, shared, losing what is written after a crash.
#[derive(Debug)]
struct SharedMemory {
    memory: Arc<InMemoryBackend>,
    crashed: Arc<AtomicBool>,
}

impl StorageBackend for SharedMemory {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.memory.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.memory.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        if self.crashed.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.memory.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.memory.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        if self.crashed.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.memory.write(offset, data)
    }
}

/// Faults to inject, changed while the database runs (tests flip them).
#[derive(Debug, Default)]
pub struct Faults {
    /// Writes so far.
    writes: AtomicU64,
    /// Fail the write with this number (1-based); 0: none.
    fail_write_at: AtomicU64,
    /// Fail every write whose number is a multiple of this; 0: none.
    fail_every: AtomicU64,
    /// Fail every fsync.
    fail_sync: AtomicBool,
    /// Refuse to grow the file, and writes past its end, as a full disk
    /// does.
    full: AtomicBool,
    /// Faults injected so far.
    injected: AtomicU64,
}

impl Faults {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The `n`-th write from now fails.
    pub fn fail_write_in(&self, n: u64) {
        let now = self.writes.load(Ordering::SeqCst);
        self.fail_write_at.store(now + n.max(1), Ordering::SeqCst);
    }

    pub fn fail_every(&self, n: u64) {
        self.fail_every.store(n, Ordering::SeqCst);
    }

    pub fn fail_sync(&self, on: bool) {
        self.fail_sync.store(on, Ordering::SeqCst);
    }

    pub fn disk_full(&self, on: bool) {
        self.full.store(on, Ordering::SeqCst);
    }

    /// No more faults.
    pub fn heal(&self) {
        self.fail_write_at.store(0, Ordering::SeqCst);
        self.fail_every.store(0, Ordering::SeqCst);
        self.fail_sync.store(false, Ordering::SeqCst);
        self.full.store(false, Ordering::SeqCst);
    }

    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    fn inject(&self, kind: std::io::ErrorKind, what: &str) -> BackendError {
        self.injected.fetch_add(1, Ordering::SeqCst);
        BackendError::Io(std::io::Error::new(kind, format!("injected fault: {what}")))
    }
}

/// A backend (the file, or a simulated disk), failing as [`Faults`] says.
#[derive(Debug)]
pub struct FaultyBackend {
    inner: Box<dyn StorageBackend>,
    faults: Arc<Faults>,
}

impl FaultyBackend {
    pub fn open(path: &std::path::Path, faults: Arc<Faults>) -> std::io::Result<Self> {
        let file: File = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let inner = FileBackend::new(file).map_err(std::io::Error::other)?;
        Ok(Self { inner: Box::new(inner), faults })
    }
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        if self.faults.full.load(Ordering::SeqCst) && len > self.inner.len()? {
            return Err(into_io(self.faults.inject(std::io::ErrorKind::StorageFull, "no space left on device")));
        }
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        if self.faults.fail_sync.load(Ordering::SeqCst) {
            return Err(into_io(self.faults.inject(std::io::ErrorKind::Other, "fsync failed")));
        }
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let n = self.faults.writes.fetch_add(1, Ordering::SeqCst) + 1;
        let at = self.faults.fail_write_at.load(Ordering::SeqCst);
        let every = self.faults.fail_every.load(Ordering::SeqCst);
        if at == n || (every > 0 && n.is_multiple_of(every)) {
            return Err(into_io(self.faults.inject(std::io::ErrorKind::Other, &format!("IO error at write {n}"))));
        }
        if self.faults.full.load(Ordering::SeqCst) && offset + data.len() as u64 > self.inner.len()? {
            return Err(into_io(self.faults.inject(std::io::ErrorKind::StorageFull, "no space left on device")));
        }
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

fn into_io(err: BackendError) -> std::io::Error {
    match err {
        BackendError::Io(io) => io,
        other => std::io::Error::other(other.to_string()),
    }
}
