//! Attempt stage: send a destination's messages in order, completing each in the store only
//! after the sink accepted it.
//!
//! Stops at the first refusal (later messages stay pending, in order) — except that an extra
//! marked best effort (a storm's full list) refused for good is skipped, when shutdown begins
//! (an in-flight send is abandoned and stays pending), and when quiet hours begin between two
//! messages (the rest is held; prepared messages, reports and staff-deletion alerts, are not
//! held). Successful and failed sends are counted under the sink's own channel.

use crate::destination::DestinationId;
use crate::render::compose::Outgoing;
use crate::shutdown::Shutdown;
use crate::sink::{SendError, Sink};
use crate::store::{Store, StoreError};

/// Why an attempt ended.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Every message was accepted.
    Done,
    /// Shutdown began; what was not accepted stays pending.
    Shutdown,
    /// Quiet hours began; the rest is held until `until`.
    Quiet { until: i64 },
    /// The sink refused a message (or the store could not record it as delivered).
    Failed(SendError),
}

/// What an attempt did.
#[derive(Debug)]
pub(crate) struct Sent {
    pub messages: usize,
    pub losses: usize,
    pub stop: Stop,
}

/// Where and under which conditions an attempt runs.
pub(crate) struct Attempt<'a> {
    pub store: &'a Store,
    pub id: &'a DestinationId,
    pub shutdown: &'a Shutdown,
    /// When quiet hours end, if they are on now.
    pub quiet_until: &'a (dyn Fn() -> Option<i64> + Sync),
}

impl Attempt<'_> {
    /// Sends `messages` through `sink`, one after the other; what was delivered is durable
    /// when this returns. (An attempt abandoned mid-way, a cycle cut short at shutdown, leaves
    /// that to the shutdown's flush and to sled's own, every half second: a crash before
    /// them repeats messages, never loses one.)
    pub async fn run<S: Sink>(
        &self,
        sink: &S,
        messages: Vec<Outgoing<S::Message>>,
    ) -> Result<Sent, StoreError> {
        let sent = self.send_all(sink, messages).await;
        // Completions are flushed in groups ([`Store::durable_before_send`]); the last group
        // here. After a store error the flush is tried all the same, and the error reported.
        let settled = self.store.settle().await;
        let sent = sent?;
        settled?;
        Ok(sent)
    }

    async fn send_all<S: Sink>(
        &self,
        sink: &S,
        messages: Vec<Outgoing<S::Message>>,
    ) -> Result<Sent, StoreError> {
        let channel = sink.channel().as_str();
        let mut sent = Sent {
            messages: 0,
            losses: 0,
            stop: Stop::Done,
        };
        for outgoing in messages {
            if self.shutdown.is_shutdown() {
                sent.stop = Stop::Shutdown;
                return Ok(sent);
            }
            // Quiet hours hold alerts on losses, not reports and staff-deletion alerts.
            if outgoing.prepared.is_none() {
                if let Some(until) = (self.quiet_until)() {
                    sent.stop = Stop::Quiet { until };
                    return Ok(sent);
                }
            }
            // Nothing leaves before what it reports is durable (the poll does not flush each
            // page); the completions of the messages before it are flushed when due.
            self.store.durable_before_send().await?;
            let mut signal = self.shutdown.clone();
            let answer = tokio::select! {
                answer = self.send_settling(sink.send(&outgoing.message)) => answer,
                () = signal.recv() => {
                    tracing::info!(destination = %self.id, "abandoned an in-flight send for shutdown; it stays pending");
                    sent.stop = Stop::Shutdown;
                    return Ok(sent);
                }
            };
            if let Err(err) = answer {
                metrics::counter!("churn_alert_messages_failed_total", "sink" => channel)
                    .increment(1);
                let for_good = matches!(
                    err,
                    SendError::Permanent { .. } | SendError::Rejected { .. }
                );
                if outgoing.best_effort && for_good {
                    tracing::warn!(destination = %self.id, "an attachment was refused ({err}); the messages that report losses go on without it");
                    continue;
                }
                sent.stop = Stop::Failed(err);
                return Ok(sent);
            }
            let completed = match &outgoing.prepared {
                Some(key) => self.store.complete_prepared(key).await,
                None => self.store.complete(self.id, &outgoing.losses).await,
            };
            match completed {
                Ok(()) => {}
                Err(e @ StoreError::NotCompleted { .. }) => {
                    // Sending again would repeat this message every cycle: stop instead.
                    sent.stop = Stop::Failed(SendError::Permanent {
                        reason: e.to_string(),
                    });
                    return Ok(sent);
                }
                Err(e) => return Err(e),
            }
            metrics::counter!("churn_alert_messages_sent_total", "sink" => channel).increment(1);
            metrics::counter!("churn_alert_losses_delivered_total", "sink" => channel)
                .increment(outgoing.losses.len() as u64);
            if let Some(producer) = outgoing
                .prepared
                .as_deref()
                .and_then(crate::store::producer_of)
            {
                // Staff-deletion alerts are named by staff member: one label for all of them.
                let report = if producer.starts_with("alert:") {
                    "staff_delete_alert".to_owned()
                } else {
                    producer.to_owned()
                };
                metrics::counter!("churn_alert_reports_delivered_total", "report" => report)
                    .increment(1);
            }
            tracing::debug!(destination = %self.id, losses = outgoing.losses.len(), "message accepted");
            sent.messages += 1;
            sent.losses += outgoing.losses.len();
        }
        Ok(sent)
    }

    /// Runs `send`; when completions wait for a flush and the send is still running when it
    /// falls due (a paced robot waits its turn, a slow one answers), they are flushed while it
    /// runs, so that no completion waits more than the flushing gap behind a send.
    async fn send_settling<F: std::future::Future>(&self, send: F) -> F::Output {
        let mut send = std::pin::pin!(send);
        if let Some(due) = self.store.completions_due() {
            tokio::select! {
                biased;
                answer = &mut send => return answer,
                () = tokio::time::sleep_until(due) => {
                    // Not a barrier: what fails to flush here waits for the next flush (before
                    // the next send, or at the attempt's end), which reports the error.
                    if let Err(e) = self.store.settle().await {
                        tracing::warn!(destination = %self.id, "could not flush the delivered messages while sending ({e}); trying again before the next send");
                    }
                }
            }
        }
        send.await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;
    use crate::destination::{Channel, DestinationKind};
    use crate::loss::Loss;
    use crate::sink::Format;

    /// A sink that answers from a script, each answer after the next of `latencies` (of
    /// tokio's clock; none when they run out), and remembers what it was given. Watching a
    /// store, it also notes at each send whether recordings still waited for a flush, and as
    /// it accepts a message whether the completions before it did.
    struct FakeSink {
        answers: Mutex<VecDeque<Result<(), SendError>>>,
        latencies: Mutex<VecDeque<std::time::Duration>>,
        got: Mutex<Vec<&'static str>>,
        watched: Option<Store>,
        unflushed_at_send: Mutex<Vec<bool>>,
        completions_waited: Mutex<Vec<bool>>,
    }

    impl FakeSink {
        fn new(answers: impl IntoIterator<Item = Result<(), SendError>>) -> Self {
            Self {
                answers: Mutex::new(answers.into_iter().collect()),
                latencies: Mutex::default(),
                got: Mutex::new(Vec::new()),
                watched: None,
                unflushed_at_send: Mutex::default(),
                completions_waited: Mutex::default(),
            }
        }

        fn watching(store: &Store) -> Self {
            Self {
                watched: Some(store.clone()),
                ..Self::new([])
            }
        }
    }

    impl Sink for FakeSink {
        type Message = &'static str;
        fn channel(&self) -> Channel {
            Channel::Wecom
        }
        fn limit(&self, _: Format) -> Option<usize> {
            Some(10)
        }
        async fn send(&self, message: &&'static str) -> Result<(), SendError> {
            if let Some(store) = &self.watched {
                let unflushed = store.records_await_flush();
                self.unflushed_at_send.lock().unwrap().push(unflushed);
            }
            let latency = self.latencies.lock().unwrap().pop_front();
            tokio::time::sleep(latency.unwrap_or_default()).await;
            if let Some(store) = &self.watched {
                let waiting = store.completions_wait();
                self.completions_waited.lock().unwrap().push(waiting);
            }
            self.got.lock().unwrap().push(message);
            self.answers.lock().unwrap().pop_front().unwrap_or(Ok(()))
        }
    }

    fn loss(customer: &str) -> Loss {
        Loss::sample(customer, "s", 10)
    }

    /// The poll records its pages without a flush each; the first send flushes them, so no
    /// message can report a loss that a crash could still forget.
    #[tokio::test]
    async fn nothing_is_sent_before_what_it_reports_is_durable() {
        let (_dir, store, id) = setup(&["a", "b"]).await;
        assert!(store.awaits_flush(), "recording alone does not flush");
        let sink = FakeSink::watching(&store);
        let shutdown = Shutdown::never();
        let sent = always_on(&store, &id, &shutdown)
            .run(&sink, outgoing(&["a", "b"]))
            .await
            .unwrap();
        assert_eq!(sent.messages, 2);
        assert_eq!(*sink.unflushed_at_send.lock().unwrap(), [false, false]);
        assert!(store.pending(&id).unwrap().is_empty());
        assert!(
            !store.awaits_flush(),
            "what was delivered is durable when the attempt ends"
        );
    }

    /// Completions are flushed in groups, but none waits behind a send that takes long (a
    /// paced or slow robot): a crash during such a send repeats that message alone.
    #[tokio::test(start_paused = true)]
    async fn a_completion_waits_no_longer_than_the_gap_behind_a_slow_send() {
        let (_dir, store, id) = setup(&["a", "b", "c"]).await;
        let shutdown = Shutdown::never();
        let gap = crate::store::COMPLETION_GAP;
        let fast = std::time::Duration::from_millis(1);
        let sink = FakeSink::watching(&store);
        *sink.latencies.lock().unwrap() = [fast, fast, gap * 3].into();
        let sent = always_on(&store, &id, &shutdown)
            .run(&sink, outgoing(&["a", "b", "c"]))
            .await
            .unwrap();
        assert_eq!(sent.messages, 3);
        assert_eq!(
            *sink.completions_waited.lock().unwrap(),
            [false, true, false],
            "b went out 1 ms after a's completion, which waited (sends faster than the gap \
             share a flush); c took three gaps, and the completions before it were flushed \
             while it was sent"
        );
        assert!(
            !store.awaits_flush(),
            "an attempt ends with what it delivered on disk"
        );
        assert!(store.pending(&id).unwrap().is_empty());
    }

    async fn setup(customers: &[&str]) -> (tempfile::TempDir, Store, DestinationId) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = DestinationId::new("r", DestinationKind::Wecom, "0");
        let batch: Vec<_> = customers
            .iter()
            .map(|c| (loss(c), vec![id.clone()]))
            .collect();
        store.record(&batch, |_| 0).await.unwrap();
        (dir, store, id)
    }

    fn outgoing(customers: &[&'static str]) -> Vec<Outgoing<&'static str>> {
        customers
            .iter()
            .map(|c| Outgoing {
                message: *c,
                losses: vec![loss(c).key()],
                best_effort: false,
                prepared: None,
            })
            .collect()
    }

    /// An attempt outside quiet hours.
    fn always_on<'a>(
        store: &'a Store,
        id: &'a DestinationId,
        shutdown: &'a Shutdown,
    ) -> Attempt<'a> {
        Attempt {
            store,
            id,
            shutdown,
            quiet_until: &|| None,
        }
    }

    #[tokio::test]
    async fn a_refused_extra_is_skipped_but_a_blocked_one_holds_the_rest() {
        let (_dir, store, id) = setup(&["a"]).await;
        let shutdown = Shutdown::never();
        let attempt = always_on(&store, &id, &shutdown);
        let with_extra = || {
            let mut messages = vec![Outgoing {
                message: "list",
                losses: Vec::new(),
                best_effort: true,
                prepared: None,
            }];
            messages.extend(outgoing(&["a"]));
            messages
        };
        let blocked = FakeSink::new([Err(SendError::Blocked)]);
        let sent = attempt.run(&blocked, with_extra()).await.unwrap();
        assert!(matches!(sent.stop, Stop::Failed(SendError::Blocked)));
        assert_eq!(store.pending(&id).unwrap().len(), 1, "a stays pending");
        let refused = FakeSink::new([
            Err(SendError::Permanent {
                reason: "upload refused".into(),
            }),
            Ok(()),
        ]);
        let sent = attempt.run(&refused, with_extra()).await.unwrap();
        assert!(matches!(sent.stop, Stop::Done));
        assert_eq!(*refused.got.lock().unwrap(), ["list", "a"]);
        assert!(store.pending(&id).unwrap().is_empty(), "a was delivered");
    }

    #[tokio::test]
    async fn messages_go_in_order_and_a_refusal_keeps_the_rest_pending() {
        let (_dir, store, id) = setup(&["a", "b", "c"]).await;
        let sink = FakeSink::new([Ok(()), Err(SendError::Blocked)]);
        let shutdown = Shutdown::never();
        let attempt = always_on(&store, &id, &shutdown);
        let sent = attempt
            .run(&sink, outgoing(&["a", "b", "c"]))
            .await
            .unwrap();
        assert_eq!(
            *sink.got.lock().unwrap(),
            ["a", "b"],
            "c is never tried after b failed"
        );
        assert_eq!((sent.messages, sent.losses), (1, 1));
        assert!(matches!(sent.stop, Stop::Failed(SendError::Blocked)));
        let left: Vec<String> = store
            .pending(&id)
            .unwrap()
            .into_iter()
            .map(|p| p.loss.customer_id)
            .collect();
        assert_eq!(
            left,
            ["b", "c"],
            "only the accepted message left the outbox"
        );
    }

    #[tokio::test]
    async fn quiet_hours_stop_before_the_next_message() {
        let (_dir, store, id) = setup(&["a", "b"]).await;
        let sink = FakeSink::new([]);
        let shutdown = Shutdown::never();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let quiet = || {
            // Quiet from the second check on.
            (calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0).then_some(99)
        };
        let attempt = Attempt {
            store: &store,
            id: &id,
            shutdown: &shutdown,
            quiet_until: &quiet,
        };
        let sent = attempt.run(&sink, outgoing(&["a", "b"])).await.unwrap();
        assert!(matches!(sent.stop, Stop::Quiet { until: 99 }));
        assert_eq!(sent.messages, 1);
        assert_eq!(store.pending_count(&id), 1);
    }

    #[tokio::test]
    async fn completing_what_is_not_pending_stops_instead_of_repeating() {
        let (_dir, store, id) = setup(&["a"]).await;
        let sink = FakeSink::new([]);
        let shutdown = Shutdown::never();
        let attempt = always_on(&store, &id, &shutdown);
        // "z" was never queued: the store cannot mark it delivered.
        let sent = attempt.run(&sink, outgoing(&["z"])).await.unwrap();
        assert!(
            matches!(&sent.stop, Stop::Failed(SendError::Permanent { reason }) if reason.contains("could not mark")),
            "{:?}",
            sent.stop
        );
    }
}
