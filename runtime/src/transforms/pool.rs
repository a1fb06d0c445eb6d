//! The transforms on several cores: one chain per worker thread, batches handed to the
//! workers in turn and their results taken back in the order they were handed out, so records
//! leave the pool in the order they entered it (the whole stream's order, not only per key).
//!
//! The pool starts with one worker and adds one (up to its maximum) each time its caller
//! finds it full with a backlog waiting ([`ChainPool::grow`]): each worker holds its own
//! compiled chain and guest memory (~10 MB), which a stream one core keeps up with does not
//! need. At most two batches per worker are in flight: a full pool makes the caller wait (and
//! so the reader behind it), instead of growing memory.

use std::collections::VecDeque;
use std::sync::mpsc as std_mpsc;

use anyhow::{anyhow, Context, Result};
use tokio::sync::oneshot;

use super::chain::{Applied, TransformChain};
use super::ModuleSpec;
use crate::Record;

/// Records per batch handed to a worker (the reader's queue is drained up to this many): 64
/// ran ~1.2x faster than 256 in the SmartModule bench (the guest copies less at a time).
pub const BATCH_RECORDS: usize = 64;
/// Bytes of record values per batch.
pub const BATCH_BYTES: usize = 256 << 10;
const IN_FLIGHT_PER_WORKER: usize = 2;

type Job = (Vec<Record>, oneshot::Sender<Applied>);

/// A worker thread died with its batch (a panic in a module's host code).
#[derive(Debug, thiserror::Error)]
#[error("a transform worker panicked (see the log above)")]
pub struct WorkerPanicked;

/// Worker threads each running a [`TransformChain`], fed in turn.
pub struct ChainPool {
    modules: Vec<ModuleSpec>,
    max_workers: usize,
    workers: Vec<std_mpsc::Sender<Job>>,
    next_worker: usize,
    in_flight: VecDeque<oneshot::Receiver<Applied>>,
}

impl std::fmt::Debug for ChainPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainPool")
            .field("workers", &self.workers.len())
            .field("max_workers", &self.max_workers)
            .field("modules", &self.module_names())
            .field("in_flight", &self.in_flight.len())
            .finish()
    }
}

impl ChainPool {
    /// Start one worker thread (up to `max_workers` later), returning once its chain is
    /// compiled and initialised, or with the initialisation error.
    pub async fn start(modules: Vec<ModuleSpec>, max_workers: usize) -> Result<Self> {
        let mut pool = Self {
            modules,
            max_workers: max_workers.max(1),
            workers: Vec::new(),
            next_worker: 0,
            in_flight: VecDeque::new(),
        };
        let ready = pool.spawn_worker()?;
        ready
            .await
            .map_err(|_| anyhow!("the transform worker stopped while initialising"))??;
        Ok(pool)
    }

    /// Add a worker if the maximum allows; `true` if one was added. It compiles its chain on
    /// its own thread while batches already queue for it.
    pub fn grow(&mut self) -> bool {
        if self.workers.len() >= self.max_workers {
            return false;
        }
        match self.spawn_worker() {
            Ok(_) => {
                tracing::info!(
                    workers = self.workers.len(),
                    "backlog: another transform worker"
                );
                true
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot add a transform worker");
                false
            }
        }
    }

    fn spawn_worker(&mut self) -> Result<oneshot::Receiver<Result<()>>> {
        let (tx, rx) = std_mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<()>>();
        let modules = self.modules.clone();
        std::thread::Builder::new()
            .name(format!("transforms-{}", self.workers.len()))
            .spawn(move || work(modules, rx, ready_tx))
            .context("cannot start a transform worker thread")?;
        self.workers.push(tx);
        Ok(ready_rx)
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    pub fn max_workers(&self) -> usize {
        self.max_workers
    }

    pub fn module_names(&self) -> Vec<&str> {
        self.modules.iter().map(|m| m.name.as_str()).collect()
    }

    /// Whether another batch may be submitted now.
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < self.workers.len() * IN_FLIGHT_PER_WORKER
    }

    /// Whether batches are being transformed.
    pub fn is_busy(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Hand a batch to the next worker (check [`ChainPool::has_room`] first).
    pub fn submit(&mut self, batch: Vec<Record>) {
        let (tx, rx) = oneshot::channel();
        let worker = &self.workers[self.next_worker];
        self.next_worker = (self.next_worker + 1) % self.workers.len();
        // A worker only goes away by panicking; its dropped result sender reports that below.
        let _ = worker.send((batch, tx));
        self.in_flight.push_back(rx);
    }

    /// The oldest batch's result, once ready (`None` when nothing is in flight).
    pub async fn next(&mut self) -> Option<Result<Applied>> {
        let rx = self.in_flight.front_mut()?;
        let result = rx.await.map_err(|_| anyhow::Error::new(WorkerPanicked));
        self.in_flight.pop_front();
        Some(result)
    }
}

fn work(
    modules: Vec<ModuleSpec>,
    jobs: std_mpsc::Receiver<Job>,
    ready: oneshot::Sender<Result<()>>,
) {
    let mut chain = match TransformChain::new(modules) {
        Ok(chain) => {
            let _ = ready.send(Ok(()));
            chain
        }
        Err(e) => {
            // Only a worker added later gets here (the first one's error stops the start):
            // the batches handed to it fail, named, rather than vanish.
            let message = format!("{e:#}");
            tracing::error!(error = %message, "a transform worker could not initialise its chain");
            let _ = ready.send(Err(e));
            while let Ok((batch, result)) = jobs.recv() {
                let _ = result.send(Applied::all_failed(&batch, message.clone()));
            }
            return;
        }
    };
    while let Ok((batch, result)) = jobs.recv() {
        let _ = result.send(chain.apply_batch(&batch));
    }
}
