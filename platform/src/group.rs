//! Requests that arrive together, served together: a group commit, or a read of many keys in one
//! statement.
//!
//! Under load, a service that runs one database statement per request pays the statement's fixed
//! costs (a round trip, parsing, a commit, a thread switch on SQLite) once per request, and those
//! costs, not the rows, are what the database spends its time on. [`Grouped::call`] hands the
//! request to one task of its own, which takes every request waiting (up to the group's size,
//! never waiting for more) and serves them with one call of [`Serve::serve`]: one statement, one
//! commit for the group. A request that finds nothing waiting is served at once, as a group of
//! one, so grouping adds no delay when the service is quiet; groups grow only when requests queue
//! up, which is when the fixed costs matter.
//!
//! Each caller gets its own answer, after its group is served: a write grouped this way is still
//! committed before its caller hears back. A request reads what was committed before it was made
//! (its group's statement runs after), so a write followed by a read sees the write.
//!
//! One group is served at a time, and the next one forms meanwhile: that is what lets groups
//! grow under load, and it is what a group commit on SQLite's one writer needs. A backend that
//! serves several calls at once to its advantage (the rate limiter's Redis batcher pipelines
//! several scripts, and sheds load when its queue is full) wants calls in flight instead, and
//! keeps a batcher of its own.
//!
//! The alternative, batching in the caller (collecting requests for a few milliseconds), delays
//! every request by the window even when nothing else is waiting.

use std::{fmt, panic::AssertUnwindSafe, sync::Arc};

use async_trait::async_trait;
use futures::FutureExt as _;
use tokio::sync::{mpsc, oneshot};

/// How a group is served: one answer per request, in the group's order. A request the server
/// leaves without an answer (a shorter list) gets [`Stopped`].
#[async_trait]
pub trait Serve: Send + Sync + 'static {
    type Request: Send + 'static;
    type Answer: Send + 'static;

    async fn serve(&self, group: &[Self::Request]) -> Vec<Self::Answer>;
}

/// The way to one serving task, which stops when the last clone of this is dropped.
pub struct Grouped<S: Serve> {
    requests: mpsc::Sender<(S::Request, oneshot::Sender<S::Answer>)>,
}

/// No answer came: the server panicked on the group, left the request unanswered, or the task is
/// gone (its runtime is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the task serving this group has stopped")]
pub struct Stopped;

impl<S: Serve> Grouped<S> {
    /// Starts the task that serves groups of at most `size` requests with `server`. Must be
    /// called inside a Tokio runtime.
    pub fn start(size: usize, server: S) -> Self {
        let size = size.max(1);
        let (requests, received) = mpsc::channel(size * 4);
        tokio::spawn(run(Arc::new(server), size, received));
        Self { requests }
    }

    /// Serves `request` in the next group; returns its answer once that group is served.
    pub async fn call(&self, request: S::Request) -> Result<S::Answer, Stopped> {
        let (answer, answered) = oneshot::channel();
        self.requests
            .send((request, answer))
            .await
            .map_err(|_| Stopped)?;
        answered.await.map_err(|_| Stopped)
    }
}

impl<S: Serve> Clone for Grouped<S> {
    fn clone(&self) -> Self {
        Self {
            requests: self.requests.clone(),
        }
    }
}

impl<S: Serve> fmt::Debug for Grouped<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grouped")
            .field("serve", &std::any::type_name::<S>())
            .finish()
    }
}

async fn run<S: Serve>(
    server: Arc<S>,
    size: usize,
    mut received: mpsc::Receiver<(S::Request, oneshot::Sender<S::Answer>)>,
) {
    let mut group = Vec::with_capacity(size);
    while received.recv_many(&mut group, size).await > 0 {
        // A caller that gave up before its group was served (its request was cancelled) is not
        // served: it was never answered, so nothing depends on its request being done.
        let (requests, callers): (Vec<_>, Vec<_>) = group
            .drain(..)
            .filter(|(_, caller)| !caller.is_closed())
            .unzip();
        if requests.is_empty() {
            continue;
        }
        // A panic fails this group's callers (their answers are dropped), not every caller after.
        let Ok(answers) = AssertUnwindSafe(server.serve(&requests))
            .catch_unwind()
            .await
        else {
            tracing::error!(
                serve = std::any::type_name::<S>(),
                requests = requests.len(),
                "serving a group panicked; its callers get an error"
            );
            continue;
        };
        if answers.len() != requests.len() {
            tracing::error!(
                serve = std::any::type_name::<S>(),
                requests = requests.len(),
                answers = answers.len(),
                "a group was served with the wrong number of answers"
            );
        }
        for (caller, answer) in callers.into_iter().zip(answers) {
            // A caller that stopped waiting meanwhile needs no answer; what its request did (a
            // write) is done all the same, as if it had been answered first.
            let _ = caller.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Doubles numbers, and remembers the groups it was given.
    #[derive(Default)]
    struct Doubler {
        groups: Arc<Mutex<Vec<Vec<u32>>>>,
    }

    #[async_trait]
    impl Serve for Doubler {
        type Request = u32;
        type Answer = u32;

        async fn serve(&self, group: &[u32]) -> Vec<u32> {
            self.groups.lock().unwrap().push(group.to_vec());
            // Long enough for the requests behind this group to queue up.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            group.iter().map(|n| n * 2).collect()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_request_is_served_at_once_as_a_group_of_one() {
        let doubler = Doubler::default();
        let groups = doubler.groups.clone();
        let grouped = Grouped::start(8, doubler);

        assert_eq!(grouped.call(21).await, Ok(42));
        assert_eq!(*groups.lock().unwrap(), vec![vec![21]]);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_that_queue_up_are_served_together_each_with_its_own_answer() {
        let doubler = Doubler::default();
        let groups = doubler.groups.clone();
        let grouped = Grouped::start(4, doubler);

        let answers = futures::future::join_all((1..=9).map(|n| grouped.call(n))).await;

        assert_eq!(
            answers,
            (1..=9).map(|n| Ok(n * 2)).collect::<Vec<_>>(),
            "each caller gets the answer to its own request"
        );
        let groups = groups.lock().unwrap();
        assert!(
            groups.len() < 9,
            "requests waiting were served together: {groups:?}"
        );
        assert!(groups.iter().all(|group| group.len() <= 4), "{groups:?}");
        assert_eq!(groups.concat().len(), 9);
    }

    /// Answers nothing for 1, panics on 2, and doubles anything else.
    struct Faulty;

    #[async_trait]
    impl Serve for Faulty {
        type Request = u32;
        type Answer = u32;

        async fn serve(&self, group: &[u32]) -> Vec<u32> {
            match group {
                [1] => Vec::new(),
                [2] => panic!("a bug in serve"),
                _ => group.iter().map(|n| n * 2).collect(),
            }
        }
    }

    #[tokio::test]
    async fn a_request_left_without_an_answer_or_hit_by_a_panic_is_told_so_and_the_next_is_served()
    {
        let grouped = Grouped::start(4, Faulty);

        assert_eq!(grouped.call(1).await, Err(Stopped));
        assert_eq!(grouped.call(2).await, Err(Stopped));
        assert_eq!(grouped.call(3).await, Ok(6), "the task still serves");
    }
}
