//! `/events`: server-sent events telling the browsers that the GitSyncs changed, so that
//! `ui.js` fetches the page's fragment again.
//!
//! One `change` event (its data the cache's change counter) after each change, at most one per
//! [`MIN_INTERVAL`]: a burst (an agent resyncing a thousand GitSyncs) becomes one refresh per
//! quarter second, and the change that ends a burst is never lost. The stream holds no API
//! connection, only a receiver of the agent's counter; [`MAX_STREAMS`] bounds how many are
//! open at once.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use super::Changes;

/// Least time between two events of one stream.
pub const MIN_INTERVAL: Duration = Duration::from_millis(250);
/// Streams open at once; more are refused (503) until some close.
pub const MAX_STREAMS: usize = 256;

/// The open streams, counted.
#[derive(Debug, Default)]
pub struct Streams(AtomicUsize);

/// One open stream's place in [`Streams`], given back when the stream is dropped.
struct Slot(Arc<Streams>);

impl Drop for Slot {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Streams {
    fn enter(self: &Arc<Self>) -> Option<Slot> {
        let admitted = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_STREAMS).then_some(n + 1)
            })
            .is_ok();
        admitted.then(|| Slot(self.clone()))
    }
}

/// The event stream for one browser, or `None` when [`MAX_STREAMS`] are open: after each
/// change of the agent's cache (`changes`) and, for the overview (`/events?health=1`), of the
/// objects' health counts (`counts`, `ui::health`) — a GitSync page does not show them, and
/// would only re-render for nothing.
pub fn stream(
    changes: Changes,
    counts: Option<Changes>,
    streams: &Arc<Streams>,
) -> Option<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>> {
    let slot = streams.enter()?;
    // Without counts: a receiver whose sender is gone, which `versions` never waits on.
    let counts = counts.unwrap_or_else(|| tokio::sync::watch::channel(0).1);
    let events = versions(changes, counts).map(move |version| {
        let _open = &slot; // held as long as the stream
        Ok(Event::default().event("change").data(version.to_string()))
    });
    Some(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The sum of the two counters after each change of either, at most one per
/// [`MIN_INTERVAL`]; ends when the agent drops its end of `changes`.
pub fn versions(mut changes: Changes, mut counts: Changes) -> impl Stream<Item = u64> {
    // What is in the cache now is on the page already: only later changes are news.
    changes.borrow_and_update();
    counts.borrow_and_update();
    let start = Instant::now()
        .checked_sub(MIN_INTERVAL)
        .unwrap_or_else(Instant::now);
    futures::stream::unfold(
        (changes, counts, start),
        |(mut rx, mut cx, last)| async move {
            tokio::time::sleep_until(last + MIN_INTERVAL).await;
            tokio::select! {
                r = rx.changed() => r.ok()?,
                // A dropped sender disables this branch; the agent's ends the stream.
                Ok(()) = cx.changed() => {}
            }
            let version = rx.borrow_and_update().wrapping_add(*cx.borrow_and_update());
            Some((version, (rx, cx, Instant::now())))
        },
    )
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn a_burst_of_changes_is_one_event_per_quarter_second() {
        let (tx, rx) = tokio::sync::watch::channel(0u64);
        let start = Instant::now();
        let (_counts_tx, counts) = tokio::sync::watch::channel(0u64);
        let mut events = Box::pin(versions(rx, counts));
        for n in 1..=3 {
            tx.send_replace(n);
        }
        assert_eq!(events.next().await, Some(3), "the burst so far, at once");
        for n in 4..=9 {
            tx.send_replace(n);
        }
        assert_eq!(events.next().await, Some(9), "the rest of the burst, once");
        assert!(start.elapsed() >= MIN_INTERVAL);
        drop(tx);
        assert_eq!(events.next().await, None, "ends with the agent");
    }

    #[tokio::test]
    async fn streams_are_bounded_and_give_their_slot_back() {
        let (_tx, rx) = tokio::sync::watch::channel(0u64);
        let streams = Arc::new(Streams::default());
        let sse = stream(rx, None, &streams).unwrap();
        assert_eq!(streams.0.load(Ordering::Acquire), 1);
        drop(sse);
        assert_eq!(streams.0.load(Ordering::Acquire), 0);
        let slots: Vec<Slot> = (0..MAX_STREAMS).filter_map(|_| streams.enter()).collect();
        assert_eq!(slots.len(), MAX_STREAMS);
        assert!(streams.enter().is_none());
        drop(slots);
        assert!(streams.enter().is_some());
    }
}
