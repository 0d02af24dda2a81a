//! Paging a window whole: pages in parallel under the client's limits, and the checks that
//! tell a window seen whole from one that moved while it was paged.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::Ordering;

use futures::stream::{FuturesUnordered, StreamExt};
use xxhash_rust::xxh3::xxh3_64;

use super::{FetchError, Page, WeibanClient, Window, OUTFLOW_ENDPOINT};
use crate::loss::Loss;
use crate::source::errors::WeibanError;
use crate::source::model::Item;

/// Pages read at most when Weiban sends no `total_count` (a million losses).
const MAX_UNCOUNTED_PAGES: u32 = 10_000;

/// Items one window may hold at most. A `total_count` above it is refused before anything is
/// planned: paging follows `total_count`, and a hostile or broken answer (9e18) must not size
/// memory or keep the poller busy for years.
pub(crate) const MAX_WINDOW_ITEMS: u64 = 1_000_000;

/// How often a window that changed while it was paged is fetched before the fetch fails.
const WHOLE_WINDOW_ATTEMPTS: u32 = 4;

fn inconsistent<E>(reason: String) -> FetchError<E> {
    FetchError::Weiban(WeibanError::Inconsistent {
        endpoint: OUTFLOW_ENDPOINT,
        reason,
    })
}

/// What one fetch of a window handed over: items, and rows by a hash of their loss key, so
/// that a window that promised `total_count` items can be checked for holes.
///
/// Rows are counted, not keys: Weiban may list one loss twice (same customer, staff member
/// and second), and such a window is whole when both rows arrived. A key's rows are the most
/// copies of it that any single answer held, because one answer is one consistent slice of the
/// list, while the same row may come back in two answers when the list's order moves.
#[derive(Default)]
struct Tally {
    handed: u64,
    rows: HashMap<u64, u32>,
    /// Items without what identifies a loss, by a hash of their JSON, counted the same way.
    unreadable: HashMap<u64, u32>,
}

impl Tally {
    /// Converts a page's items, counting them.
    fn count(&mut self, items: Vec<Item>) -> Vec<Loss> {
        let mut losses = Vec::with_capacity(items.len());
        let mut in_page: HashMap<(bool, u64), u32> = HashMap::new();
        for item in items {
            match item.loss {
                Some(loss) => {
                    *in_page
                        .entry((true, xxh3_64(loss.key().as_bytes())))
                        .or_default() += 1;
                    losses.push(loss);
                }
                None => {
                    skipped_item();
                    *in_page.entry((false, item.unreadable)).or_default() += 1;
                }
            }
        }
        for ((readable, hash), copies) in in_page {
            let seen = if readable {
                &mut self.rows
            } else {
                &mut self.unreadable
            };
            let most = seen.entry(hash).or_default();
            *most = (*most).max(copies);
        }
        self.handed += losses.len() as u64;
        losses
    }

    /// Distinct rows seen, over every attempt at the window.
    fn distinct(&self) -> u64 {
        let rows = |seen: &HashMap<u64, u32>| seen.values().map(|&n| u64::from(n)).sum::<u64>();
        rows(&self.rows) + rows(&self.unreadable)
    }
}

/// The outflow times at both ends of every page, by offset.
#[derive(Default)]
struct Boundaries {
    pages: BTreeMap<u64, (u64, Option<i64>, Option<i64>)>,
}

impl Boundaries {
    fn page(&mut self, offset: u64, items: &[Item]) {
        let time = |item: Option<&Item>| item.and_then(|i| i.outflow_at);
        self.pages.insert(
            offset,
            (items.len() as u64, time(items.first()), time(items.last())),
        );
    }

    /// Seconds whose items end one page and begin the next.
    fn straddling(&self) -> BTreeSet<i64> {
        let mut seconds = BTreeSet::new();
        let mut previous: Option<(u64, Option<i64>)> = None;
        for (&offset, &(len, first, last)) in &self.pages {
            if let (Some((end, Some(before))), Some(first)) = (previous, first) {
                if end == offset && before == first {
                    seconds.insert(first);
                }
            }
            previous = Some((offset + len, last));
        }
        seconds
    }
}

impl WeibanClient {
    /// Every loss of `window`, collected, each once (previews, checks and reports; the
    /// pipeline records pages as they come instead). A whole fetch hands some losses over more
    /// than once (a second straddling pages is fetched again, a shifted window is fetched
    /// again), which the store absorbs for the pipeline and this does for everybody else.
    pub async fn losses_in(&self, window: Window) -> Result<Vec<Loss>, WeibanError> {
        let mut losses = Vec::new();
        let mut seen = std::collections::HashSet::new();
        self.fetch_window(window, async |page: Vec<Loss>| {
            losses.extend(page.into_iter().filter(|loss| seen.insert(loss.key())));
            Ok::<_, std::convert::Infallible>(())
        })
        .await
        .map_err(|e| match e {
            FetchError::Weiban(e) => e,
            FetchError::Sink(never) => match never {},
        })?;
        Ok(losses)
    }

    /// Fetches every loss of `window`, handing each page to `sink` as it arrives.
    ///
    /// Returns the number of losses handed over. Succeeds only when the window was seen whole,
    /// so a caller may advance its window exactly then. Pages after the first are fetched
    /// concurrently; a page shorter than asked is followed up from where it ended, since a
    /// server may cap pages below `limit`.
    ///
    /// Whole means: every page saw the same `total_count` (a record that lands while pages are
    /// fetched in parallel shifts the list, and a page answered before it and its neighbour
    /// answered after it skip the item on their boundary), a second straddling a page boundary
    /// was fetched on its own (Weiban's order within one second is not stable), and as many
    /// distinct losses arrived as `total_count` promised. A window that is not whole is
    /// fetched again (recorded losses are deduplicated by the store), a few times at most;
    /// then the fetch fails and the window does not advance.
    pub async fn fetch_window<E>(
        &self,
        window: Window,
        mut sink: impl AsyncFnMut(Vec<Loss>) -> Result<(), E>,
    ) -> Result<u64, FetchError<E>> {
        self.restore_in_flight();
        let mut tally = Tally::default();
        let mut attempt = 1;
        loop {
            match self.fetch_window_once(window, &mut tally, &mut sink).await {
                Err(FetchError::Weiban(WeibanError::Inconsistent { reason, .. }))
                    if attempt < WHOLE_WINDOW_ATTEMPTS =>
                {
                    tracing::info!(
                        "Weiban's list changed while paging ({reason}); fetching the window again"
                    );
                    metrics::counter!("churn_alert_weiban_refetches_total").increment(1);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One attempt at the window. `tally` keeps what earlier attempts saw: items whose order
    /// moves between requests (a busy second) are complete once their union is.
    async fn fetch_window_once<E>(
        &self,
        window: Window,
        tally: &mut Tally,
        sink: &mut impl AsyncFnMut(Vec<Loss>) -> Result<(), E>,
    ) -> Result<u64, FetchError<E>> {
        let first = self.outflow_page(window, 0, self.page_size).await?;
        let Some(total) = first.total_count else {
            return self.fetch_without_count(window, first, tally, sink).await;
        };
        if total > MAX_WINDOW_ITEMS {
            // Not "the list moved": fetching again cannot help.
            return Err(FetchError::Weiban(WeibanError::WindowTooLarge {
                endpoint: OUTFLOW_ENDPOINT,
                total,
                limit: MAX_WINDOW_ITEMS,
            }));
        }
        let mut boundaries = Boundaries::default();
        let step = first.items.len() as u64;
        boundaries.page(0, &first.items);
        sink(tally.count(first.items))
            .await
            .map_err(FetchError::Sink)?;
        if step == 0 {
            if total > 0 {
                return Err(inconsistent(format!(
                    "total_count is {total} but the first page is empty"
                )));
            }
            return Ok(0);
        }

        self.fetch_rest(window, total, step, tally, &mut boundaries, sink)
            .await?;
        // Items of one second may come in any order on each request: a second that straddles
        // a page boundary is fetched whole on its own.
        for second in boundaries.straddling() {
            self.fetch_second(second, tally, sink).await?;
        }
        if tally.distinct() < total {
            return Err(inconsistent(format!(
                "total_count is {total} but only {} distinct items arrived",
                tally.distinct()
            )));
        }
        Ok(tally.handed)
    }

    /// The pages after the first, concurrently within the in-flight limit; each must see the
    /// first page's `total_count`.
    async fn fetch_rest<E>(
        &self,
        window: Window,
        total: u64,
        step: u64,
        tally: &mut Tally,
        boundaries: &mut Boundaries,
        sink: &mut impl AsyncFnMut(Vec<Loss>) -> Result<(), E>,
    ) -> Result<(), FetchError<E>> {
        // Pages are planned as they are sent, never all at once: memory stays flat whatever
        // the window holds. Short pages are followed up from where they ended.
        let mut planned = step;
        let mut follow_ups: VecDeque<(u64, u64)> = VecDeque::new();
        let mut running = FuturesUnordered::new();
        loop {
            while running.len() < self.in_flight_limit.load(Ordering::Relaxed) {
                let Some((offset, expected)) = follow_ups
                    .pop_front()
                    .or_else(|| next_page(&mut planned, total, step))
                else {
                    break;
                };
                running.push(async move {
                    let page = self.outflow_page(window, offset, expected as u32).await;
                    (offset, expected, page)
                });
            }
            let Some((offset, expected, page)) = running.next().await else {
                return Ok(());
            };
            let page = page?;
            let got = page.items.len() as u64;
            if page.total_count != Some(total) || (got == 0 && expected > 0) {
                let seen = page
                    .total_count
                    .map_or_else(|| "no count".to_owned(), |n| n.to_string());
                return Err(inconsistent(format!(
                    "total_count went from {total} to {seen} (page at offset {offset} had {got} items)"
                )));
            }
            boundaries.page(offset, &page.items);
            sink(tally.count(page.items))
                .await
                .map_err(FetchError::Sink)?;
            if got < expected {
                follow_ups.push_back((offset + got, expected - got));
            }
        }
    }

    /// Every loss of one second, one page after the other.
    async fn fetch_second<E>(
        &self,
        second: i64,
        tally: &mut Tally,
        sink: &mut impl AsyncFnMut(Vec<Loss>) -> Result<(), E>,
    ) -> Result<(), FetchError<E>> {
        let one = Window {
            start: second,
            end: second,
        };
        let mut offset = 0;
        loop {
            let page = self.outflow_page(one, offset, self.page_size).await?;
            let got = page.items.len() as u64;
            sink(tally.count(page.items))
                .await
                .map_err(FetchError::Sink)?;
            offset += got;
            if got == 0 || page.total_count.is_none_or(|n| offset >= n) {
                return Ok(());
            }
        }
    }

    /// Pages one after the other when Weiban sent no `total_count`: a missing count is
    /// unknown, not zero, so paging goes on until a page comes back shorter than the longest
    /// one seen (or empty).
    async fn fetch_without_count<E>(
        &self,
        window: Window,
        first: Page,
        tally: &mut Tally,
        sink: &mut impl AsyncFnMut(Vec<Loss>) -> Result<(), E>,
    ) -> Result<u64, FetchError<E>> {
        tracing::warn!(
            "Weiban sent no total_count; paging the window one page after the other until a short page"
        );
        let mut offset = first.items.len() as u64;
        let mut longest = offset;
        let mut last = offset;
        sink(tally.count(first.items))
            .await
            .map_err(FetchError::Sink)?;
        let mut pages = 1;
        while last > 0 && last >= longest {
            if pages >= MAX_UNCOUNTED_PAGES {
                return Err(inconsistent(format!(
                    "no total_count, and still full pages after {pages}; a server that ignores `offset`?"
                )));
            }
            let before = tally.distinct();
            let page = self.outflow_page(window, offset, self.page_size).await?;
            last = page.items.len() as u64;
            longest = longest.max(last);
            offset += last;
            pages += 1;
            sink(tally.count(page.items))
                .await
                .map_err(FetchError::Sink)?;
            if last > 0 && tally.distinct() == before {
                // A full page of nothing new: the server repeats itself; stop here.
                break;
            }
        }
        Ok(tally.handed)
    }
}

/// The next page after `planned` items, if the window holds more.
fn next_page(planned: &mut u64, total: u64, step: u64) -> Option<(u64, u64)> {
    (*planned < total).then(|| {
        let expected = step.min(total - *planned);
        let page = (*planned, expected);
        *planned += expected;
        page
    })
}

pub(super) fn into_losses(items: Vec<Item>) -> Vec<Loss> {
    items
        .into_iter()
        .filter_map(|item| {
            if item.loss.is_none() {
                skipped_item();
            }
            item.loss
        })
        .collect()
}

fn skipped_item() {
    metrics::counter!("churn_alert_weiban_items_skipped_total").increment(1);
    tracing::warn!("skipping an outflow item without customer id or outflow time");
}
