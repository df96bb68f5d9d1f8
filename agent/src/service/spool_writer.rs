//! Results go to the spool from a thread of their own, not from the probing one.
//!
//! A spool write is an SQLite transaction with a disk sync: milliseconds, and
//! far more on a busy or failing disk. The engine runs on a single-threaded
//! runtime, so a write made there would hold back sending and receiving. The
//! service hands each result to a [`SpoolWriter`] instead: a bounded queue in
//! front of a dedicated thread. A full queue blocks the producer (backpressure,
//! never unbounded memory); a disk slow enough to fill it slows probing down,
//! but RTTs stay right, because replies are dated by the kernel
//! ([`crate::probing::network::Received::at`]). [`SpoolWriter::flush`] waits until every
//! result handed over before it is stored and reports what was; dropping the
//! writer stores what is queued before it returns, so a clean stop loses nothing.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use nkpath_proto::ResultRecord;
use tokio::sync::oneshot;

use crate::service::spool::{Spool, SpoolError};

/// Results queued at most: a round of a /22 is 1,024 traces, so a round's
/// results fit while the disk catches up, in a few megabytes.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Where the writer stores results: the spool, or a test's stand-in.
pub trait ResultStore: Send + Sync + 'static {
    /// Stores one result durably.
    fn put(&self, record: &ResultRecord) -> Result<(), SpoolError>;
}

impl ResultStore for Spool {
    fn put(&self, record: &ResultRecord) -> Result<(), SpoolError> {
        Spool::put(self, record)
    }
}

/// What was stored since the previous [`SpoolWriter::flush`].
#[derive(Debug, Default)]
pub struct Written {
    /// Pings stored.
    pub pings: u64,
    /// Traces stored (multipath traces included).
    pub traces: u64,
    /// Results that could not be stored.
    pub failed: u64,
    /// The first failure, if any.
    pub error: Option<SpoolError>,
}

/// The writer thread is gone (it panicked): nothing more can be stored.
#[derive(Debug, thiserror::Error)]
#[error("the spool writer thread has stopped; the agent must restart")]
pub struct WriterGone;

enum Job {
    Put(Box<ResultRecord>),
    Flush(oneshot::Sender<Written>),
}

/// A bounded queue of results in front of a thread that stores them in order.
#[derive(Debug)]
pub struct SpoolWriter {
    queue: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl SpoolWriter {
    /// Starts the writer thread in front of `store`, with room for `capacity`
    /// queued results.
    pub fn start<S: ResultStore>(store: Arc<S>, capacity: usize) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::sync_channel(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("nkpath-spool".into())
            .spawn(move || write_all(store.as_ref(), &jobs))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues a result; blocks while the queue is full.
    pub fn put(&self, record: ResultRecord) -> Result<(), WriterGone> {
        self.send(Job::Put(Box::new(record)))
    }

    /// Waits until every result queued before is stored; tells what was stored
    /// since the previous flush.
    pub async fn flush(&self) -> Result<Written, WriterGone> {
        let (reply, written) = oneshot::channel();
        self.send(Job::Flush(reply))?;
        written.await.map_err(|_| WriterGone)
    }

    fn send(&self, job: Job) -> Result<(), WriterGone> {
        let queue = self.queue.as_ref().ok_or(WriterGone)?;
        queue.send(job).map_err(|_| WriterGone)
    }
}

impl Drop for SpoolWriter {
    /// Closes the queue and waits until the thread stored what was in it.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the spool writer thread panicked; results queued to it are lost");
        }
    }
}

/// The writer thread: stores jobs in order until the queue closes.
fn write_all<S: ResultStore + ?Sized>(store: &S, jobs: &Receiver<Job>) {
    let mut written = Written::default();
    for job in jobs {
        match job {
            Job::Put(record) => match store.put(&record) {
                Ok(()) => match *record {
                    ResultRecord::Ping(_) => written.pings += 1,
                    ResultRecord::Trace(_) | ResultRecord::Multipath(_) => written.traces += 1,
                },
                Err(e) => {
                    tracing::error!("cannot spool a result: {e}");
                    written.failed += 1;
                    written.error.get_or_insert(e);
                }
            },
            Job::Flush(reply) => {
                // The flusher may have given up waiting: nothing to tell then.
                let _ = reply.send(std::mem::take(&mut written));
            }
        }
    }
    if written.failed > 0 {
        tracing::error!(
            failed = written.failed,
            "results could not be spooled before the writer stopped"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::path::PathBuf;
    use std::sync::Mutex;
    use std::time::Duration;

    use nkpath_proto::{PingResult, SCHEMA_VERSION};
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;

    fn ping(n: u8) -> ResultRecord {
        ResultRecord::Ping(PingResult {
            schema_version: SCHEMA_VERSION,
            result_id: Uuid::new_v4(),
            agent_id: "test".into(),
            agent_version: "0".into(),
            round_id: Uuid::nil(),
            source: Ipv4Addr::new(192, 0, 2, 1),
            target: Ipv4Addr::new(10, 9, 0, n),
            started_at: OffsetDateTime::UNIX_EPOCH,
            sent: 1,
            received: 0,
            rtts_us: Vec::new(),
        })
    }

    /// A store that takes its time, fails on request, and remembers what it stored.
    #[derive(Default)]
    struct SlowStore {
        delay: Duration,
        fail_target: Option<Ipv4Addr>,
        stored: Mutex<Vec<Uuid>>,
    }

    impl ResultStore for SlowStore {
        fn put(&self, record: &ResultRecord) -> Result<(), SpoolError> {
            std::thread::sleep(self.delay);
            if let ResultRecord::Ping(p) = record
                && Some(p.target) == self.fail_target
            {
                return Err(SpoolError::Missing {
                    path: PathBuf::from("/nowhere"),
                });
            }
            self.stored.lock().unwrap().push(record.result_id());
            Ok(())
        }
    }

    #[test]
    fn dropping_the_writer_stores_every_queued_result_in_order() {
        let store = Arc::new(SlowStore {
            delay: Duration::from_millis(2),
            ..SlowStore::default()
        });
        let writer = SpoolWriter::start(Arc::clone(&store), 8).unwrap();
        let records: Vec<ResultRecord> = (0..40).map(ping).collect();
        let ids: Vec<Uuid> = records.iter().map(ResultRecord::result_id).collect();
        for r in records {
            writer.put(r).unwrap();
        }
        drop(writer);
        assert_eq!(*store.stored.lock().unwrap(), ids);
    }

    #[tokio::test]
    async fn a_flush_waits_for_the_results_before_it_and_reports_them() {
        let store = Arc::new(SlowStore {
            delay: Duration::from_millis(1),
            fail_target: Some(Ipv4Addr::new(10, 9, 0, 3)),
            ..SlowStore::default()
        });
        let writer = SpoolWriter::start(Arc::clone(&store), 4).unwrap();
        for n in 0..6 {
            writer.put(ping(n)).unwrap();
        }
        let written = writer.flush().await.unwrap();
        assert_eq!((written.pings, written.traces, written.failed), (5, 0, 1));
        assert!(matches!(written.error, Some(SpoolError::Missing { .. })));
        assert_eq!(store.stored.lock().unwrap().len(), 5);
        // Counts start afresh after a flush.
        writer.put(ping(7)).unwrap();
        let written = writer.flush().await.unwrap();
        assert_eq!((written.pings, written.failed), (1, 0));
        assert!(written.error.is_none());
    }

    /// A store that stores nothing until the test opens its gate.
    struct GatedStore {
        gate: Mutex<mpsc::Receiver<()>>,
        stored: Mutex<usize>,
    }

    impl ResultStore for GatedStore {
        fn put(&self, _: &ResultRecord) -> Result<(), SpoolError> {
            self.gate.lock().unwrap().recv().unwrap();
            *self.stored.lock().unwrap() += 1;
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_holds_the_producer_back_instead_of_growing() {
        let (open, gate) = mpsc::channel();
        let store = Arc::new(GatedStore {
            gate: Mutex::new(gate),
            stored: Mutex::new(0),
        });
        let capacity = 2;
        let writer = Arc::new(SpoolWriter::start(Arc::clone(&store), capacity).unwrap());
        // One result in the store's hands, `capacity` queued: the next put must wait.
        let total = capacity + 3;
        let (done_tx, done) = mpsc::channel();
        let producer = {
            let writer = Arc::clone(&writer);
            std::thread::spawn(move || {
                for n in 0..total {
                    writer.put(ping(n as u8)).unwrap();
                    done_tx.send(n).unwrap();
                }
            })
        };
        let mut queued = Vec::new();
        while let Ok(n) = done.recv_timeout(Duration::from_millis(300)) {
            queued.push(n);
        }
        assert!(
            queued.len() <= capacity + 1,
            "{} results handed over while the store was stuck",
            queued.len()
        );
        for _ in 0..total {
            open.send(()).unwrap();
        }
        producer.join().unwrap();
        drop(Arc::into_inner(writer).expect("the producer is done"));
        assert_eq!(*store.stored.lock().unwrap(), total);
    }
}
