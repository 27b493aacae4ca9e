//! Following a function's log as it is written (the console's live log): a [`LogFollower`]
//! reads what is stored after its position, at most [`FOLLOW_READ_MAX`] lines a read, in
//! order, then waits until the meter's writer stores another batch of lines (a watch the
//! writer bumps: no polling of the store). Followers are bounded: at most
//! [`LOG_FOLLOWERS_MAX`] per gateway, each for at most [`FOLLOW_MAX`]; one ends when its
//! function is deleted, and all end when the server stops ([`Gateway::end_log_follows`]).

use std::time::Duration;

use hearth_store::StoreError;
use hearth_types::{FunctionId, FunctionName, LogLine};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;

use crate::Gateway;

/// Followers one gateway serves at once.
pub const LOG_FOLLOWERS_MAX: usize = 64;
/// The longest one follower lives; its reader reconnects from where it was.
pub const FOLLOW_MAX: Duration = Duration::from_secs(3600);
/// Lines one read returns, at most.
pub const FOLLOW_READ_MAX: usize = 1_000;
/// Most message bytes one read returns (at least one line): with lines of up to 256 KiB, the
/// line count alone would let a read hold hundreds of MiB.
pub const FOLLOW_READ_BYTES: usize = 1024 * 1024;

/// The first lines of `lines` whose messages fit in [`FOLLOW_READ_BYTES`] (one at least),
/// never cutting a stored entry: its lines share its `seq`, the position the next read
/// starts after (an invocation's `START`, `END` and `REPORT`, `hearth_store::ENTRY_LINES_MAX`).
fn within_bytes(mut lines: Vec<LogLine>) -> Vec<LogLine> {
    let mut bytes = 0;
    let mut keep = lines
        .iter()
        .position(|l| {
            bytes += l.message.len();
            bytes > FOLLOW_READ_BYTES
        })
        .map_or(lines.len(), |i| i.max(1));
    let cuts = |keep: usize| keep < lines.len() && lines[keep].seq == lines[keep - 1].seq;
    while cuts(keep) && keep > 1 {
        keep -= 1;
    }
    // The first entry alone is too large: all of it.
    while cuts(keep) {
        keep += 1;
    }
    lines.truncate(keep);
    lines
}
/// How often a follower checks that its function still exists, besides when this gateway
/// changes a function (a change made through another node is seen this late).
const RECHECK: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("no function named {0}")]
    NoFunction(FunctionName),
    #[error("{LOG_FOLLOWERS_MAX} logs are followed on this server already, the most it serves at once")]
    TooManyFollowers,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a follower has next.
#[derive(Debug)]
pub enum Followed {
    /// Lines after the previous ones, in order.
    Lines(Vec<LogLine>),
    /// The follower is done; every later call says so again.
    Ended(FollowEnd),
}

/// Why a follower ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowEnd {
    /// Its time is up (at most [`FOLLOW_MAX`]), or the server is stopping.
    Expired,
    /// Its function was deleted.
    Deleted,
}

/// One reader following one function's log; holds one of the gateway's places for
/// followers until it is dropped.
pub struct LogFollower {
    gateway: Gateway,
    function: FunctionName,
    function_id: FunctionId,
    request_id: Option<String>,
    after: i64,
    /// Whether lines may be stored past `after` that were not read yet.
    unread: bool,
    batches: watch::Receiver<u64>,
    changes: watch::Receiver<u64>,
    stopping: watch::Receiver<bool>,
    recheck: tokio::time::Interval,
    deadline: Instant,
    ended: Option<FollowEnd>,
    /// Lines from before the start, returned first (see [`LogFollower::with_tail`]).
    backlog: Vec<LogLine>,
    _place: OwnedSemaphorePermit,
}

impl Gateway {
    /// Follows `name`'s log from after position `after` (`None`: from its end, once what
    /// was sent before is stored), optionally one request's lines only, for at most
    /// `for_at_most` (and [`FOLLOW_MAX`]).
    pub async fn follow_logs(
        &self,
        name: &FunctionName,
        after: Option<i64>,
        request_id: Option<String>,
        for_at_most: Duration,
    ) -> Result<LogFollower, FollowError> {
        let f = self.function(name).await?.ok_or_else(|| FollowError::NoFunction(name.clone()))?;
        let place = self.inner.meter.follower_place().ok_or(FollowError::TooManyFollowers)?;
        // Subscribed before the first read: a batch stored after it wakes the follower.
        let batches = self.inner.meter.log_batches();
        let changes = self.inner.function_changes.subscribe();
        let stopping = self.inner.follows_end.subscribe();
        let after = match after {
            Some(a) => a,
            None => self.inner.meter.log_end().await?,
        };
        Ok(LogFollower {
            gateway: self.clone(),
            function: f.name,
            function_id: f.id,
            request_id,
            after,
            unread: true,
            batches,
            changes,
            stopping,
            recheck: tokio::time::interval_at(Instant::now() + RECHECK, RECHECK),
            deadline: Instant::now() + for_at_most.min(FOLLOW_MAX),
            ended: None,
            backlog: Vec::new(),
            _place: place,
        })
    }
}

/// Resolves once the server stops.
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    // An error: the gateway is gone, so stopped too.
    let _ = stopping.wait_for(|stop| *stop).await;
}

impl Gateway {
    /// Ends every follower of a log, now and from now on (the server is stopping: their
    /// readers reconnect to the next one rather than hold its graceful stop).
    pub fn end_log_follows(&self) {
        self.inner.follows_end.send_replace(true);
    }
}

impl LogFollower {
    /// Also returns, first, the last `lines` (at most [`FOLLOW_READ_MAX`]) of the log before
    /// the follower's start: a reader that starts at the end still sees the recent past.
    pub async fn with_tail(mut self, lines: usize) -> Result<Self, StoreError> {
        let limit = lines.min(FOLLOW_READ_MAX);
        if limit > 0 {
            let meter = self.gateway.meter();
            let mut tail = meter.stored_log_tail(&self.function, self.after, self.request_id.as_deref(), limit).await?;
            // The newest lines of the tail when it is too large to send at once.
            tail.reverse();
            self.backlog = within_bytes(tail);
            self.backlog.reverse();
        }
        Ok(self)
    }

    /// The next lines, once there are any; or why the follower ended.
    pub async fn next(&mut self) -> Result<Followed, StoreError> {
        if !self.backlog.is_empty() {
            return Ok(Followed::Lines(std::mem::take(&mut self.backlog)));
        }
        loop {
            if let Some(end) = self.ended {
                return Ok(Followed::Ended(end));
            }
            if Instant::now() >= self.deadline || *self.stopping.borrow() {
                self.ended = Some(FollowEnd::Expired);
                continue;
            }
            if self.unread {
                let meter = self.gateway.meter();
                // Everything up to `end` is stored before the read starts.
                let end = meter.stored_log_end().await?;
                let read =
                    meter.stored_logs(&self.function, self.after, self.request_id.as_deref(), FOLLOW_READ_MAX).await?;
                let n = read.len();
                let lines = within_bytes(read);
                // A full or cut read may leave more; a shorter one read everything stored.
                // Full: the store never cuts an entry, so a read may stop up to an entry's
                // lines short of its limit.
                let full = n + hearth_store::ENTRY_LINES_MAX > FOLLOW_READ_MAX;
                self.unread = full || lines.len() < n;
                if let Some(last) = lines.last() {
                    self.after = last.seq;
                }
                if !self.unread {
                    // Nothing more up to `end` is this follower's (other functions' or other
                    // requests' lines): the next read starts past them, not at the last line
                    // it returned, so a filtered follower never reads the same lines twice.
                    self.after = self.after.max(end);
                }
                if !lines.is_empty() {
                    return Ok(Followed::Lines(lines));
                }
            }
            tokio::select! {
                stored = self.batches.changed() => match stored {
                    Ok(()) => self.unread = true,
                    // The writer is gone (the gateway is shutting down).
                    Err(_) => self.ended = Some(FollowEnd::Expired),
                },
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        self.ended = Some(FollowEnd::Expired);
                    } else {
                        self.check_function().await?;
                    }
                }
                _ = self.recheck.tick() => self.check_function().await?,
                _ = tokio::time::sleep_until(self.deadline) => self.ended = Some(FollowEnd::Expired),
                () = stopped(&mut self.stopping) => self.ended = Some(FollowEnd::Expired),
            }
        }
    }

    /// Ends the follower if its function is gone (or is another function of the same name).
    async fn check_function(&mut self) -> Result<(), StoreError> {
        let current = self.gateway.function(&self.function).await?;
        if current.is_none_or(|f| f.id != self.function_id) {
            self.ended = Some(FollowEnd::Deleted);
        }
        Ok(())
    }

    /// The position of the last line returned (or the starting one).
    pub fn position(&self) -> i64 {
        self.after
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;
    use hearth_agent::Runtimes;
    use hearth_agent::fake_driver::FakeDriver;
    use hearth_blob::{CodeStore, PackageLimits};
    use hearth_store::{Expect, MemoryStore, MetadataStore};
    use hearth_types::LogStream;

    use super::*;
    use crate::GatewaySettings;

    async fn gateway(dir: &tempfile::TempDir) -> (Gateway, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::default());
        let code = CodeStore::local(&dir.path().join("code"), PackageLimits::DEFAULT).unwrap();
        let runtimes = Runtimes::install(&dir.path().join("runtimes")).unwrap();
        let settings = GatewaySettings { stem_cells: None, ..Default::default() };
        let gateway =
            Gateway::new(store.clone(), code, dir.path().join("cache"), runtimes, FakeDriver::new(), settings);
        let f = hearth_store::conformance::sample_function("followed");
        store.save_function(&f, Expect::Absent, None).await.unwrap();
        (gateway, store)
    }

    fn line(message: &str) -> LogLine {
        LogLine {
            seq: 0,
            function: "followed".parse().unwrap(),
            request_id: None,
            at: Utc::now(),
            stream: LogStream::Stdout,
            message: message.into(),
        }
    }

    #[test]
    fn a_read_is_bounded_in_bytes() {
        let big = "x".repeat(300 * 1024);
        let lines: Vec<LogLine> = (0..10).map(|seq| LogLine { seq, ..line(&big) }).collect();
        assert_eq!(within_bytes(lines).len(), 3, "3 × 300 KiB fit in 1 MiB, 4 do not");
        assert_eq!(within_bytes(vec![line(&"y".repeat(2 * FOLLOW_READ_BYTES))]).len(), 1, "one line at least");
        assert_eq!(within_bytes((0..5).map(|seq| LogLine { seq, ..line("small") }).collect()).len(), 5);
    }

    /// A byte bound never cuts an entry's lines (one `seq`): the next read starts after it.
    #[test]
    fn a_read_keeps_an_entrys_lines_together() {
        let big = "x".repeat(400 * 1024);
        let at = |seq, message: &str| LogLine { seq, ..line(message) };
        // 400 + 400 KiB, then an entry whose second line passes 1 MiB.
        let lines = vec![at(1, &big), at(2, &big), at(3, "START"), at(3, &big), at(4, "next")];
        let kept: Vec<i64> = within_bytes(lines).iter().map(|l| l.seq).collect();
        assert_eq!(kept, [1, 2], "the entry waits for the next read");
        // The first entry alone passes the bound: all of it.
        let lines = vec![at(3, &big), at(3, &big), at(3, &big), at(4, "next")];
        let kept: Vec<i64> = within_bytes(lines).iter().map(|l| l.seq).collect();
        assert_eq!(kept, [3, 3, 3]);
    }

    /// A follower whose lines exceed a read's bytes gets them over several reads, in order,
    /// none lost.
    #[tokio::test]
    async fn large_lines_come_over_several_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (gateway, _store) = gateway(&dir).await;
        let name: FunctionName = "followed".parse().unwrap();
        let mut f = gateway.follow_logs(&name, None, None, FOLLOW_MAX).await.unwrap();
        for i in 0..8 {
            gateway.meter().log(line(&format!("{i}{}", "z".repeat(250 * 1024))));
        }
        let mut got = Vec::new();
        while got.len() < 8 {
            let Followed::Lines(lines) = next(&mut f).await else { panic!("ended") };
            let bytes: usize = lines.iter().map(|l| l.message.len()).sum();
            assert!(bytes <= FOLLOW_READ_BYTES, "{bytes}");
            got.extend(lines.into_iter().map(|l| l.message.chars().next().unwrap()));
        }
        assert_eq!(got, ['0', '1', '2', '3', '4', '5', '6', '7']);
    }

    async fn next(f: &mut LogFollower) -> Followed {
        tokio::time::timeout(Duration::from_secs(10), f.next()).await.expect("the follower answers").unwrap()
    }

    #[tokio::test]
    async fn followers_get_new_lines_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (gateway, _store) = gateway(&dir).await;
        let name: FunctionName = "followed".parse().unwrap();
        gateway.meter().log(line("before"));
        let mut followers = Vec::new();
        for _ in 0..LOG_FOLLOWERS_MAX {
            followers.push(gateway.follow_logs(&name, None, None, FOLLOW_MAX).await.unwrap());
        }
        let refused = gateway.follow_logs(&name, None, None, FOLLOW_MAX).await;
        assert!(matches!(refused, Err(FollowError::TooManyFollowers)), "{:?}", refused.err());
        followers.truncate(1);
        let mut f = gateway.follow_logs(&name, None, None, FOLLOW_MAX).await.expect("a place was given back");
        gateway.meter().log(line("after"));
        let Followed::Lines(lines) = next(&mut f).await else { panic!("lines expected") };
        let messages: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["after"], "from the end of the log, once stored");
        assert_eq!(f.position(), lines[0].seq);
        let absent = gateway.follow_logs(&"absent".parse().unwrap(), None, None, FOLLOW_MAX).await;
        assert!(matches!(absent, Err(FollowError::NoFunction(_))));
    }

    #[tokio::test]
    async fn followers_end_with_their_function_their_time_or_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let (gateway, store) = gateway(&dir).await;
        let name: FunctionName = "followed".parse().unwrap();
        let mut brief = gateway.follow_logs(&name, None, None, Duration::from_millis(50)).await.unwrap();
        assert!(matches!(next(&mut brief).await, Followed::Ended(FollowEnd::Expired)));
        assert!(matches!(next(&mut brief).await, Followed::Ended(FollowEnd::Expired)), "and stays ended");

        let mut deleted = gateway.follow_logs(&name, None, None, FOLLOW_MAX).await.unwrap();
        store.delete_function(&name).await.unwrap();
        gateway.function_changed(&name).await;
        assert!(matches!(next(&mut deleted).await, Followed::Ended(FollowEnd::Deleted)));

        store
            .save_function(&hearth_store::conformance::sample_function("followed"), Expect::Absent, None)
            .await
            .unwrap();
        let mut stopped = gateway.follow_logs(&name, None, None, FOLLOW_MAX).await.unwrap();
        gateway.end_log_follows();
        assert!(matches!(next(&mut stopped).await, Followed::Ended(FollowEnd::Expired)));
    }
}
