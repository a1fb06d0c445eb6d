//! Where records come from: a Fluvio partition stream (offsets committed with the consumer
//! id), or, with `--input-file`, a capture file as sources write with `--capture`
//! (one partition; line n is offset n; the committed offset kept in `<file>.committed`), to
//! mirror an offline capture or test the bridge without a Fluvio cluster.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;

/// One record read from Fluvio (or the input file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    pub partition: u32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub timestamp_ms: Option<i64>,
}

/// The end of a Fluvio partition (the offset after its last record) as last reported.
#[derive(Clone, Debug)]
pub struct PartitionEnd(Arc<AtomicI64>);

impl Default for PartitionEnd {
    fn default() -> Self {
        Self(Arc::new(AtomicI64::new(-1)))
    }
}

impl PartitionEnd {
    /// `None` until the cluster has reported it.
    pub fn get(&self) -> Option<i64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|e| *e >= 0)
    }

    pub fn set(&self, end: i64) {
        self.0.store(end, Ordering::Relaxed);
    }
}

/// How long a Fluvio stream may stay idle short of its partition's end before the records
/// there count as skipped.
const TAIL_CHECK: Duration = Duration::from_secs(2);

/// The Fluvio cluster failed under a stream (an SPU down, a connection lost): the bridge
/// connects again and goes on from what Kafka holds.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FluvioFailed(pub String);

/// A consumer stream of one Fluvio partition.
pub type FluvioStream = Box<
    dyn fluvio::consumer::ConsumerStream<
            Item = Result<fluvio::consumer::Record, fluvio::dataplane::link::ErrorCode>,
        > + Send
        + Unpin,
>;

/// Opens a stream of the same partition at an offset, for reading skipped records again.
pub type Reopen = Box<dyn Fn(i64) -> BoxFuture<'static, Result<FluvioStream>> + Send + Sync>;

/// Records read again by a task of their own, and the offset the range read ends before.
type Rereading = (tokio::task::JoinHandle<Result<Vec<SourceRecord>>>, i64);

/// The most records one re-read at a partition's end holds (the rest is read by the stream,
/// or by the next re-read).
const TAIL_REREAD_MAX: i64 = 4096;

/// One partition's records: from Fluvio, or from a capture file.
pub enum PartitionInput {
    Fluvio(Box<FluvioInput>),
    File(FileInput),
}

/// One Fluvio partition through the consumer id's stream, with the records it skipped read
/// again.
///
/// Fluvio 0.50 drops the batch that straddles the end of a fetch (`max-bytes`) when a backlog
/// is read. A jump past the expected offset means the consumer skipped records: they are read
/// again with a second stream (the consumer id's stream cannot be repositioned); if they are
/// not there either (expired by retention), the bridge stops. A batch dropped at the very end
/// of the partition leaves no jump: a stream idle for [`TAIL_CHECK`] short of the partition's
/// `end` reads the rest again the same way.
pub struct FluvioInput {
    partition: u32,
    /// The consumer id's stream (public to the tests, which script it).
    pub(crate) stream: FluvioStream,
    /// The offset the next record must have.
    expected: Option<i64>,
    reopen: Reopen,
    end: PartitionEnd,
    /// The last offset the consumer id's stream handed out: what its commit commits.
    last_streamed: Option<i64>,
    /// A re-read under way (its own task, so that [`FluvioInput::next`] stays cancel-safe),
    /// and the record read after the gap (none at the partition's end).
    rereading: Option<(Rereading, Option<SourceRecord>)>,
    /// Records read and not yet handed out (a re-read gap, then the record after it).
    ready: std::collections::VecDeque<SourceRecord>,
}

impl PartitionInput {
    pub fn fluvio(
        partition: u32,
        stream: FluvioStream,
        expected: Option<i64>,
        reopen: Reopen,
        end: PartitionEnd,
    ) -> Self {
        PartitionInput::Fluvio(Box::new(FluvioInput {
            partition,
            stream,
            expected,
            reopen,
            end,
            last_streamed: None,
            rereading: None,
            ready: Default::default(),
        }))
    }

    /// The next record (waits for one to arrive). Cancel-safe: `mirror_partition` races it
    /// with acknowledgements.
    pub async fn next(&mut self) -> Result<Option<SourceRecord>> {
        match self {
            PartitionInput::Fluvio(f) => f.next().await.map(Some),
            PartitionInput::File(f) => f.next().await.map(Some),
        }
    }

    /// Whether records read are still to be handed out (read again after a skipped fetch).
    pub fn holds_records(&self) -> bool {
        match self {
            PartitionInput::Fluvio(f) => f.holds_records(),
            PartitionInput::File(_) => false,
        }
    }

    /// Whether [`PartitionInput::commit`] commits the last record read rather than the offset
    /// it is given (the Fluvio consumer stream does): then everything read must be
    /// acknowledged first, and a commit cannot happen while a read is pending (see
    /// `mirror_partition`); a file commits any offset, at any time.
    pub fn commits_last_read(&self) -> bool {
        matches!(self, PartitionInput::Fluvio(_))
    }

    /// Commit `offset`, acknowledged by Kafka with every earlier one. Returns whether it
    /// committed (see [`FluvioInput::commit`]).
    pub async fn commit(&mut self, offset: i64) -> Result<bool> {
        match self {
            PartitionInput::Fluvio(f) => f.commit(offset).await,
            PartitionInput::File(f) => f.commit(offset).map(|()| true),
        }
    }
}

impl FluvioInput {
    /// The next record, in offset order, none skipped.
    async fn next(&mut self) -> Result<SourceRecord> {
        loop {
            if self.rereading.is_some() {
                self.take_reread().await?;
            }
            if let Some(rec) = self.ready.pop_front() {
                return Ok(rec);
            }
            match tokio::time::timeout(TAIL_CHECK, self.stream.next()).await {
                Ok(next) => {
                    if let Some(rec) = self.streamed(next)? {
                        return Ok(rec);
                    }
                }
                Err(_idle) => self.check_tail(),
            }
        }
    }

    /// Wait for the re-read under way; its records, then the one after the gap, come next.
    async fn take_reread(&mut self) -> Result<()> {
        let Some(((task, _), _)) = self.rereading.as_mut() else {
            return Ok(());
        };
        let again = task
            .await
            .map_err(|e| anyhow::anyhow!("reading again: {e}"))??;
        let ((_, to), after) = self.rereading.take().expect("a re-read under way");
        self.ready.extend(again);
        self.ready.extend(after);
        let next = self
            .ready
            .back()
            .map_or(to, |last| (last.offset + 1).max(to));
        self.expected = Some(next);
        Ok(())
    }

    /// The stream was idle: if it stopped short of the partition's end, read the rest again.
    fn check_tail(&mut self) {
        let (Some(want), Some(end)) = (self.expected, self.end.get()) else {
            return;
        };
        if end <= want {
            return;
        }
        tracing::warn!(
            partition = self.partition,
            expected = want,
            end,
            "the Fluvio consumer stopped short of the partition's end; reading the last records again"
        );
        // At most a window at a time: a stall deep in a backlog must not read the rest of
        // the partition into memory.
        let to = end.min(want + TAIL_REREAD_MAX);
        self.rereading = Some((reread(&self.reopen, self.partition, want, to), None));
    }

    /// What the stream delivered: the record to hand out, or none (read again already, or
    /// records skipped before it are being read again).
    fn streamed(
        &mut self,
        next: Option<Result<fluvio::consumer::Record, fluvio::dataplane::link::ErrorCode>>,
    ) -> Result<Option<SourceRecord>> {
        let partition = self.partition;
        let r = match next {
            // A live stream does not end: the connection to the SPU went away.
            None => {
                return Err(
                    FluvioFailed(format!("Fluvio partition {partition}: the stream ended")).into(),
                )
            }
            Some(Err(e)) => {
                return Err(FluvioFailed(format!("Fluvio partition {partition}: {e:?}")).into())
            }
            Some(Ok(r)) => source_record(partition, &r),
        };
        self.last_streamed = Some(r.offset);
        match self.expected {
            // Read again already (the end was reported before the stream delivered).
            Some(want) if r.offset < want => {
                tracing::debug!(partition, offset = r.offset, "already read again");
                Ok(None)
            }
            Some(want) if r.offset > want => {
                tracing::warn!(
                    partition,
                    expected = want,
                    got = r.offset,
                    "the Fluvio consumer skipped records; reading them again"
                );
                let task = reread(&self.reopen, partition, want, r.offset);
                self.rereading = Some((task, Some(r)));
                Ok(None)
            }
            _ => {
                self.expected = Some(r.offset + 1);
                Ok(Some(r))
            }
        }
    }

    fn holds_records(&self) -> bool {
        self.rereading.is_some() || !self.ready.is_empty()
    }

    /// The consumer stream commits the last record it handed out, so this commits only when
    /// that is `offset` (nothing read again or read after it is pending; not after the last
    /// records were read again by the second stream); otherwise a later commit will.
    async fn commit(&mut self, offset: i64) -> Result<bool> {
        let partition = self.partition;
        if self.expected != Some(offset + 1)
            || self.last_streamed != Some(offset)
            || self.holds_records()
        {
            tracing::debug!(
                partition,
                offset,
                "not committing: records read after it are not acknowledged yet"
            );
            return Ok(false);
        }
        tracing::debug!(partition, offset, "offset commit");
        self.stream.offset_commit().await.map_err(|e| {
            FluvioFailed(format!(
                "Fluvio partition {partition}: offset commit: {e:?}"
            ))
        })?;
        tracing::debug!(partition, offset, "offset flush");
        match tokio::time::timeout(Duration::from_secs(5), self.stream.offset_flush()).await {
            Ok(r) => r.map_err(|e| {
                FluvioFailed(format!("Fluvio partition {partition}: offset flush: {e:?}"))
            })?,
            Err(_) => tracing::warn!(partition, offset, "offset flush did not answer in 5 s"),
        }
        tracing::debug!(partition, offset, "offset flushed");
        Ok(true)
    }
}

fn source_record(partition: u32, r: &fluvio::consumer::Record) -> SourceRecord {
    SourceRecord {
        partition,
        offset: r.offset(),
        key: r.key().map(|k| k.to_vec()),
        value: r.value().to_vec(),
        timestamp_ms: Some(r.timestamp()).filter(|t| *t > 0),
    }
}

/// Start reading offsets `from..to` again, on a task of their own.
fn reread(reopen: &Reopen, partition: u32, from: i64, to: i64) -> Rereading {
    let task = tokio::spawn(read_again(reopen(from), partition, from, to));
    (task, to)
}

/// Offsets `from..to` of a partition, read with a stream of their own: every one of them, in
/// order, or an error naming the first missing.
async fn read_again(
    opening: BoxFuture<'static, Result<FluvioStream>>,
    partition: u32,
    from: i64,
    to: i64,
) -> Result<Vec<SourceRecord>> {
    let missing = |at: i64| {
        anyhow::anyhow!(
            "Fluvio partition {partition}: offsets {at}..{to} are missing from the topic (expired by retention?); stopping without committing past {}",
            from - 1
        )
    };
    let mut stream = opening.await?;
    // A jump over records gone by retention can be huge: reserve no more than a batch holds.
    let mut records = Vec::with_capacity((to - from).min(4096) as usize);
    while from + (records.len() as i64) < to {
        let want = from + records.len() as i64;
        let next = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .map_err(|_| missing(want))?;
        match next {
            Some(Ok(r)) if r.offset() == want => records.push(source_record(partition, &r)),
            Some(Ok(_)) | None => return Err(missing(want)),
            Some(Err(e)) => anyhow::bail!("Fluvio partition {partition}: reading again: {e:?}"),
        }
    }
    Ok(records)
}

/// A capture file read as partition 0, tailed like a live partition.
pub struct FileInput {
    path: PathBuf,
    reader: std::io::BufReader<std::fs::File>,
    next_offset: i64,
    line: String,
}

impl FileInput {
    /// Open at `start` (the first offset to read).
    pub fn open(path: PathBuf, start: i64) -> Result<Self> {
        let file = std::fs::File::open(&path)
            .with_context(|| format!("--input-file {}", path.display()))?;
        let mut input = Self {
            path,
            reader: std::io::BufReader::with_capacity(1 << 20, file),
            next_offset: 0,
            line: String::new(),
        };
        while input.next_offset < start {
            input.line.clear();
            if input.reader.read_line(&mut input.line)? == 0 {
                break;
            }
            if input.line.ends_with('\n') {
                input.next_offset += 1;
            } else {
                let back = input.line.len() as i64;
                input.reader.seek_relative(-back)?;
                break;
            }
        }
        Ok(input)
    }

    /// The offset committed earlier (`<file>.committed`), if any.
    pub fn committed(path: &std::path::Path) -> Option<i64> {
        std::fs::read_to_string(Self::committed_path(path))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn committed_path(path: &std::path::Path) -> PathBuf {
        PathBuf::from(format!("{}.committed", path.display()))
    }

    async fn next(&mut self) -> Result<SourceRecord> {
        loop {
            self.line.clear();
            let n = self.reader.read_line(&mut self.line)?;
            if n > 0 && self.line.ends_with('\n') {
                let offset = self.next_offset;
                self.next_offset += 1;
                let r = connector_runtime::output::read_capture_line(self.line.trim_end())
                    .with_context(|| format!("{}: line {}", self.path.display(), offset + 1))?;
                return Ok(SourceRecord {
                    partition: 0,
                    offset,
                    key: r.key.map(|k| k.to_vec()),
                    value: r.value.to_vec(),
                    timestamp_ms: r.timestamp_ms,
                });
            }
            if n > 0 {
                // A line still being written: read it again whole later.
                self.reader.seek_relative(-(n as i64))?;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn commit(&mut self, offset: i64) -> Result<()> {
        let path = Self::committed_path(&self.path);
        let tmp = PathBuf::from(format!("{}.tmp", path.display()));
        std::fs::write(&tmp, offset.to_string())?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The Fluvio input against scripted partition streams: gaps read again, the tail read
    //! again, commit gating, and the ways a stream fails.

    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context as TaskContext, Poll};

    use fluvio::consumer::{ConsumerBoxFuture, ConsumerStream};
    use fluvio::dataplane::link::ErrorCode;
    use fluvio::dataplane::record::{Batch, Record as DataRecord};

    use super::*;

    type Item = Result<fluvio::consumer::Record, ErrorCode>;
    /// What a scripted stream's commits were, and where re-reads opened a stream.
    type Commits = Arc<Mutex<Vec<&'static str>>>;
    type Opened = Arc<Mutex<Vec<i64>>>;

    /// A partition stream that hands out its items, then idles (or ends, like a stream whose
    /// connection went away); it notes its commits.
    struct Scripted {
        items: VecDeque<Item>,
        ends: bool,
        commits: Arc<Mutex<Vec<&'static str>>>,
    }

    impl futures_util::Stream for Scripted {
        type Item = Item;
        fn poll_next(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<Option<Item>> {
            let this = self.get_mut();
            match this.items.pop_front() {
                Some(item) => Poll::Ready(Some(item)),
                None if this.ends => Poll::Ready(None),
                None => Poll::Pending,
            }
        }
    }

    impl ConsumerStream for Scripted {
        fn offset_commit(&mut self) -> ConsumerBoxFuture<'_> {
            self.commits.lock().unwrap().push("commit");
            Box::pin(async { Ok(()) })
        }
        fn offset_flush(&mut self) -> ConsumerBoxFuture<'_> {
            self.commits.lock().unwrap().push("flush");
            Box::pin(async { Ok(()) })
        }
    }

    fn record(offset: i64) -> Item {
        let mut batch = Batch::new();
        batch.add_record(DataRecord::new(format!("value {offset}")));
        batch.base_offset = offset;
        Ok(batch
            .into_consumer_records_iter(0)
            .next()
            .expect("one record"))
    }

    fn stream(offsets: &[i64]) -> (FluvioStream, Arc<Mutex<Vec<&'static str>>>) {
        let commits = Arc::new(Mutex::new(Vec::new()));
        let s = Scripted {
            items: offsets.iter().map(|o| record(*o)).collect(),
            ends: false,
            commits: commits.clone(),
        };
        (Box::new(s), commits)
    }

    /// Re-reads open a stream at the offset asked for over `offsets`; each opening is noted.
    fn reopen(offsets: Vec<i64>) -> (Reopen, Arc<Mutex<Vec<i64>>>) {
        let opened = Arc::new(Mutex::new(Vec::new()));
        let seen = opened.clone();
        let reopen: Reopen = Box::new(move |from| {
            seen.lock().unwrap().push(from);
            let rest: Vec<i64> = offsets.iter().copied().filter(|o| *o >= from).collect();
            Box::pin(async move { Ok(stream(&rest).0) })
        });
        (reopen, opened)
    }

    fn fluvio_input(
        offsets: &[i64],
        again: Vec<i64>,
        end: Option<i64>,
    ) -> (PartitionInput, Commits, Opened) {
        let (s, commits) = stream(offsets);
        let (reopen, opened) = reopen(again);
        let partition_end = PartitionEnd::default();
        if let Some(e) = end {
            partition_end.set(e);
        }
        let first = offsets.first().copied();
        (
            PartitionInput::fluvio(7, s, first, reopen, partition_end),
            commits,
            opened,
        )
    }

    async fn offsets(input: &mut PartitionInput, n: usize) -> Vec<i64> {
        let mut out = Vec::new();
        for _ in 0..n {
            let r = input.next().await.unwrap().expect("a record");
            assert_eq!(r.partition, 7);
            assert_eq!(r.value, format!("value {}", r.offset).into_bytes());
            out.push(r.offset);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn records_in_order_pass_and_only_the_last_read_is_committed() {
        let (mut input, commits, opened) = fluvio_input(&[0, 1, 2], vec![], Some(3));
        assert_eq!(offsets(&mut input, 3).await, vec![0, 1, 2]);
        assert!(!input.commit(1).await.unwrap(), "2 was read after 1");
        assert!(commits.lock().unwrap().is_empty());
        assert!(input.commit(2).await.unwrap());
        assert_eq!(*commits.lock().unwrap(), vec!["commit", "flush"]);
        assert!(opened.lock().unwrap().is_empty(), "nothing read again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_jump_reads_the_skipped_records_again_in_order() {
        let (mut input, _, opened) = fluvio_input(&[0, 3, 4], vec![0, 1, 2, 3, 4], None);
        assert_eq!(offsets(&mut input, 5).await, vec![0, 1, 2, 3, 4]);
        assert_eq!(
            *opened.lock().unwrap(),
            vec![1],
            "one re-read, from the gap"
        );
        assert!(input.commit(4).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn no_commit_while_records_read_again_are_still_to_be_handed_out() {
        let (mut input, commits, _) = fluvio_input(&[0, 3], vec![1, 2, 3], None);
        assert_eq!(offsets(&mut input, 2).await, vec![0, 1]);
        assert!(input.holds_records());
        assert!(!input.commit(1).await.unwrap());
        assert_eq!(offsets(&mut input, 2).await, vec![2, 3]);
        assert!(!input.holds_records());
        assert!(input.commit(3).await.unwrap());
        assert_eq!(*commits.lock().unwrap(), vec!["commit", "flush"]);
    }

    #[tokio::test(start_paused = true)]
    async fn records_gone_from_the_topic_stop_the_partition_naming_them() {
        // Offset 2 expired by retention: the re-read finds 1, then 3.
        let (mut input, _, _) = fluvio_input(&[0, 3], vec![1, 3], None);
        assert_eq!(offsets(&mut input, 1).await, vec![0]);
        let e = input.next().await.unwrap_err().to_string();
        assert!(
            e.contains("offsets 2..3 are missing") && e.contains("without committing past 0"),
            "{e}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_idle_short_of_the_partition_end_reads_the_tail_again() {
        // The batch holding 1 and 2 was dropped at the end of the partition: no jump shows it.
        let (mut input, _, opened) = fluvio_input(&[0], vec![0, 1, 2], Some(3));
        assert_eq!(offsets(&mut input, 3).await, vec![0, 1, 2]);
        assert_eq!(*opened.lock().unwrap(), vec![1]);
        assert!(
            input.commit(2).await.is_ok_and(|c| !c),
            "the consumer id's stream handed out 0 only"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_tail_read_again_is_bounded_by_a_window() {
        let n = TAIL_REREAD_MAX * 2 + 10;
        let (mut input, _, opened) = fluvio_input(&[0], (0..n).collect(), Some(n));
        let got = offsets(&mut input, n as usize).await;
        assert_eq!(got, (0..n).collect::<Vec<_>>());
        assert_eq!(
            *opened.lock().unwrap(),
            vec![1, 1 + TAIL_REREAD_MAX, 1 + 2 * TAIL_REREAD_MAX],
            "one window at a time"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_at_the_partition_end_waits() {
        let (mut input, _, opened) = fluvio_input(&[0, 1], vec![], Some(2));
        assert_eq!(offsets(&mut input, 2).await, vec![0, 1]);
        let waited = tokio::time::timeout(TAIL_CHECK * 5, input.next()).await;
        assert!(waited.is_err(), "nothing to hand out");
        assert!(opened.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_ends_or_fails_is_a_fluvio_failure() {
        let (mut input, _, _) = fluvio_input(&[0], vec![], None);
        if let PartitionInput::Fluvio(f) = &mut input {
            let commits = Arc::new(Mutex::new(Vec::new()));
            f.stream = Box::new(Scripted {
                items: [record(0)].into(),
                ends: true,
                commits,
            });
        }
        assert_eq!(offsets(&mut input, 1).await, vec![0]);
        let e = input.next().await.unwrap_err();
        assert!(e.is::<FluvioFailed>(), "{e}");
        assert!(e
            .to_string()
            .contains("Fluvio partition 7: the stream ended"));

        let (mut input, _, _) = fluvio_input(&[0], vec![], None);
        if let PartitionInput::Fluvio(f) = &mut input {
            f.stream = Box::new(Scripted {
                items: [Err(ErrorCode::OffsetOutOfRange)].into(),
                ends: false,
                commits: Default::default(),
            });
        }
        let e = input.next().await.unwrap_err();
        assert!(
            e.is::<FluvioFailed>() && e.to_string().contains("OffsetOutOfRange"),
            "{e}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_cut_short_by_shutdown_loses_nothing() {
        // `next` is raced with acknowledgements and signals: dropping it mid-re-read keeps the
        // re-read, and the next call hands its records out.
        let (mut input, _, opened) = fluvio_input(&[0, 3], vec![1, 2, 3], None);
        assert_eq!(offsets(&mut input, 1).await, vec![0]);
        let mut cut = 0;
        let got = loop {
            match futures_util::FutureExt::now_or_never(input.next()) {
                Some(r) => break r.unwrap().unwrap().offset,
                None => cut += 1,
            }
            tokio::task::yield_now().await;
        };
        assert!(cut > 0, "the re-read runs on its own task");
        assert_eq!(got, 1);
        assert_eq!(offsets(&mut input, 2).await, vec![2, 3]);
        assert_eq!(opened.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_capture_file_is_read_from_its_start_and_commits_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        let lines: String = (0..5)
            .map(|i| {
                connector_runtime::output::capture_line(&connector_runtime::Record::new(
                    None,
                    format!("v{i}"),
                ))
            })
            .collect();
        std::fs::write(&path, lines).unwrap();
        let mut input = PartitionInput::File(FileInput::open(path.clone(), 3).unwrap());
        let r = input.next().await.unwrap().unwrap();
        assert_eq!((r.offset, r.value), (3, b"v3".to_vec()));
        assert!(input.commit(1).await.unwrap());
        assert_eq!(FileInput::committed(&path), Some(1));
    }
}
