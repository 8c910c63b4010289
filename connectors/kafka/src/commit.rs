//! Acknowledging consumed input upstream: offsets committed to the
//! consumer group once the checkpoint that holds them has completed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iotflow_core::source::{Commits, Resume};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::assign::offsets_to_commit;
use crate::client::SourceContext;
use crate::config::KafkaSourceConfig;
use crate::stats::{KafkaStats, add};

/// How long a stopping source waits for the job's last checkpoint.
const FINAL_COMMIT_WAIT: Duration = Duration::from_secs(30);

/// Waits (up to [`FINAL_COMMIT_WAIT`]) until the job says no further
/// checkpoint will complete; the positions of the newest completed one.
pub(crate) fn final_checkpoint(commits: &Commits) -> Option<Vec<Resume>> {
    let deadline = Instant::now() + FINAL_COMMIT_WAIT;
    let mut last = None;
    loop {
        if commits.ended() {
            if let Some(p) = commits.take() {
                last = Some(p);
            }
            return last;
        }
        if let Some(p) = commits.wait(Duration::from_millis(250)) {
            last = Some(p);
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                "the job's last checkpoint did not complete in 30 s; committing the newest seen"
            );
            return last;
        }
    }
}

/// Commits offsets to the group, skipping unchanged ones.
pub(crate) struct Committer {
    consumer: Arc<BaseConsumer<SourceContext>>,
    enabled: bool,
    committed: HashMap<(String, i32), u64>,
    stats: Arc<KafkaStats>,
}

impl Committer {
    pub(crate) fn new(
        consumer: Arc<BaseConsumer<SourceContext>>,
        config: &KafkaSourceConfig,
        stats: Arc<KafkaStats>,
    ) -> Self {
        if config.group_id.is_none() {
            tracing::debug!("no group_id: offsets are not committed to Kafka");
        }
        Committer {
            consumer,
            enabled: config.group_id.is_some(),
            committed: HashMap::new(),
            stats,
        }
    }

    /// Commits the positions of a completed checkpoint.
    pub(crate) fn commit_positions(
        &mut self,
        positions: &[Resume],
        done_at: &HashMap<Arc<str>, u64>,
        mode: CommitMode,
    ) {
        let list = offsets_to_commit(positions, |k| done_at.get(k).copied());
        self.commit(list, mode);
    }

    pub(crate) fn commit(&mut self, list: Vec<(String, i32, u64)>, mode: CommitMode) {
        if !self.enabled {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        let mut changed = Vec::new();
        for (topic, partition, offset) in list {
            if self.committed.get(&(topic.clone(), partition)) == Some(&offset) {
                continue;
            }
            let Ok(o) = i64::try_from(offset) else {
                continue;
            };
            if tpl
                .add_partition_offset(&topic, partition, Offset::Offset(o))
                .is_ok()
            {
                changed.push(((topic, partition), offset));
            }
        }
        if changed.is_empty() {
            return;
        }
        add(&self.stats.commits, 1);
        match self.consumer.commit(&tpl, mode) {
            Ok(()) => {
                tracing::debug!(partitions = changed.len(), ?mode, "kafka offsets committed");
                self.committed.extend(changed);
            }
            Err(e) => {
                add(&self.stats.commit_failures, 1);
                tracing::warn!(
                    "kafka offset commit failed (positions stay in the checkpoint): {e}"
                );
            }
        }
    }
}
