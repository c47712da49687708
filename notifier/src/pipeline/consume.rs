//! The consumer loop every stage runs: receive, handle, commit; pause what is not due; never skip
//! a record because handling it failed.
//!
//! - **Commit after handling.** The offset is committed once the handler returns, that is once
//!   the outcome is in the database. A crash before that replays the record (at-least-once), and
//!   the handlers are written to make a replay harmless.
//! - **Not due yet: pause, do not sleep.** A retry job that is not due pauses its partition
//!   (`Consumer::pause` rewinds it to that job) and a timer resumes it at the due time, while the
//!   loop keeps receiving from the other partitions. Sleeping here instead would stall every
//!   partition this consumer holds, and with Kafka, a consumer that stops polling for five minutes
//!   is expelled from its group.
//! - **A failed handler is retried, not skipped.** An error (the database is down, the broker
//!   refused a publish), or a panic, is retried on the same record with a growing pause, because
//!   the records behind it in the partition must not overtake it and a committed record is gone.
//!   A panic is a bug; it stalls one partition, loudly (`notifier_stage_errors_total` and an
//!   error log per try), rather than killing the stage, which would hand the record to the next
//!   member to panic on in turn. Messages that can never succeed are not errors: the handlers
//!   turn them into outcomes (a dead letter, a logged poison message).
//! - **A failed pause is retried before anything else is received**: carrying on would receive
//!   the records behind the unpaused one and could commit past it. A failed resume is retried
//!   a second later.

use std::{future::Future, panic::AssertUnwindSafe, pin::Pin, time::Duration};

use futures::{FutureExt, StreamExt, stream::FuturesUnordered};
use platform::{
    shutdown::CancellationToken,
    topic::{Consumer, Delivery},
};

/// What a handler did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Finished with: commit it.
    Done,
    /// Not to be handled for this long: pause its partition until then.
    NotDue(Duration),
}

type Resume = Pin<Box<dyn Future<Output = (String, i32)> + Send>>;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const RESUME_RETRY: Duration = Duration::from_secs(1);

/// Runs `handle` on every record `consumer` receives, until `stop`.
pub async fn run<F, Fut>(
    stage: &str,
    consumer: Box<dyn Consumer>,
    stop: CancellationToken,
    handle: F,
) where
    F: Fn(Delivery) -> Fut,
    Fut: Future<Output = anyhow::Result<Handled>>,
{
    let mut resumes: FuturesUnordered<Resume> = FuturesUnordered::new();
    loop {
        let delivery = tokio::select! {
            _ = stop.cancelled() => return,
            Some((topic, partition)) = resumes.next(), if !resumes.is_empty() => {
                if let Err(err) = consumer.resume(&topic, partition).await {
                    tracing::warn!(stage, %topic, partition, error = %platform::problem::error_chain(&err), "resuming a partition failed; trying again in a second");
                    resumes.push(resume_after(RESUME_RETRY, topic, partition));
                }
                continue;
            }
            received = consumer.recv() => match received {
                Ok(delivery) => delivery,
                Err(err) => {
                    // Kafka reports a lost broker connection here and reconnects by itself.
                    tracing::warn!(stage, error = %platform::problem::error_chain(&err), "receiving failed");
                    if pause(&stop, FIRST_BACKOFF).await.is_err() {
                        return;
                    }
                    continue;
                }
            },
        };

        let mut backoff = FIRST_BACKOFF;
        let handled = loop {
            let handled = AssertUnwindSafe(handle(delivery.clone()))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the handler panicked")));
            match handled {
                Ok(handled) => break handled,
                Err(err) => {
                    metrics::counter!("notifier_stage_errors_total", "stage" => stage.to_owned())
                        .increment(1);
                    tracing::warn!(
                        stage, topic = %delivery.topic, partition = delivery.partition,
                        offset = delivery.offset, error = %platform::problem::error_chain(&*err),
                        "handling a record failed; trying it again"
                    );
                    if pause(&stop, backoff).await.is_err() {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };

        match handled {
            Handled::Done => {
                // A commit that fails leaves the record to be received again (by this consumer
                // after a rebalance, or by the next one): a duplicate, which the handlers absorb.
                if let Err(err) = consumer.commit(&delivery).await {
                    tracing::warn!(stage, error = %platform::problem::error_chain(&err), "committing failed");
                }
            }
            Handled::NotDue(wait) => {
                let mut backoff = FIRST_BACKOFF;
                while let Err(err) = consumer.pause(&delivery).await {
                    tracing::warn!(stage, error = %platform::problem::error_chain(&err), "pausing a partition failed; trying again");
                    if pause(&stop, backoff).await.is_err() {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                resumes.push(resume_after(
                    wait,
                    delivery.topic.clone(),
                    delivery.partition,
                ));
            }
        }
    }
}

/// A timer that yields `(topic, partition)` after `wait`, to resume it.
fn resume_after(wait: Duration, topic: String, partition: i32) -> Resume {
    Box::pin(async move {
        tokio::time::sleep(wait).await;
        (topic, partition)
    })
}

/// Waits `duration`, or fails at once if `stop` comes first.
async fn pause(stop: &CancellationToken, duration: Duration) -> Result<(), ()> {
    tokio::select! {
        _ = stop.cancelled() => Err(()),
        _ = tokio::time::sleep(duration) => Ok(()),
    }
}
