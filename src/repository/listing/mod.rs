//! The engine under Query and Scan: one validated request, run page by page
//! through the resilient client, inside its read budget, with cursors sealed
//! to the request's shape and caller.

use std::collections::VecDeque;
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::repository::codec::Item;
use crate::repository::cursor::CursorScope;
use crate::repository::expression::{Filter, Names, Placeholders, Values};
use crate::repository::page::{Page, PageEnd, ReadBudget};
use crate::repository::scan::Segment;

mod fetch;
mod progress;

use self::fetch::Fetched;
pub(crate) use self::progress::LearnedSize;
use self::progress::{Progress, unit_bytes};
use crate::repository::{Consistency, Repository, RepositoryError};

/// The setters Query and Scan share, in their own `impl` blocks: both hold
/// a [`Request`] in a field named `common`.
macro_rules! listing_setters {
    () => {
        /// Only the items matching `filter` (they are read, and paid for,
        /// either way).
        pub fn filter(mut self, filter: crate::repository::Filter) -> Self {
            self.common.filter = Some(filter);
            self
        }

        /// Only these attributes of each item (the cost stays the same).
        pub fn project<I, S>(mut self, attributes: I) -> Self
        where
            I: IntoIterator<Item = S>,
            S: Into<String>,
        {
            self.common.projection = attributes.into_iter().map(Into::into).collect();
            self
        }

        /// Read consistency (strong is refused on a global index, as
        /// DynamoDB refuses it).
        pub fn consistency(mut self, consistency: crate::repository::Consistency) -> Self {
            self.common.consistency = consistency;
            self
        }

        /// At most `items` items per page (1 to 1000; default 25).
        pub fn page_size(mut self, items: u32) -> Self {
            self.common.page_size = items;
            self
        }

        /// Continues after a page: `cursor` is a page's `next_cursor`, issued
        /// to the same `caller` for the same listing. A cursor that was
        /// altered, has expired, belongs to another caller or another listing
        /// is refused with [`RepositoryError::Cursor`](crate::repository::RepositoryError::Cursor)
        /// before any call.
        pub fn after(mut self, cursor: impl Into<String>) -> Self {
            self.common.cursor = Some(cursor.into());
            self
        }

        /// Binds the cursors of this listing to a caller (a non-secret id,
        /// e.g. an API key's id): a cursor issued to one caller is refused
        /// for another.
        pub fn caller(mut self, caller: impl Into<String>) -> Self {
            self.common.caller = caller.into();
            self
        }
    };
}
pub(crate) use listing_setters;

/// The most items one page may ask for.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// What Query and Scan share while being built.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) filter: Option<Filter>,
    pub(crate) projection: Vec<String>,
    pub(crate) consistency: Consistency,
    pub(crate) forward: bool,
    pub(crate) page_size: u32,
    pub(crate) budget: ReadBudget,
    pub(crate) cursor: Option<String>,
    pub(crate) caller: String,
}

/// Query or Scan, with what only that one has.
#[derive(Debug)]
pub(crate) enum ListKind {
    Query {
        index: Option<String>,
        key_condition: String,
        partition_label: String,
    },
    Scan {
        index: Option<String>,
        segment: Option<Segment>,
    },
}

impl Request {
    pub(crate) fn new(budget: ReadBudget) -> Request {
        Request {
            filter: None,
            projection: Vec::new(),
            consistency: Consistency::Eventual,
            forward: true,
            page_size: 25,
            budget,
            cursor: None,
            caller: String::new(),
        }
    }

    /// Checks and places everything, and opens the cursor: a bad cursor ends
    /// here, before any call.
    pub(crate) fn into_listing<T>(
        self,
        repository: &Repository<T>,
        kind: ListKind,
        mut placeholders: Placeholders,
    ) -> Result<Listing<'_, T>, RepositoryError<T>>
    where
        T: Serialize + DeserializeOwned,
    {
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(RepositoryError::InvalidQuery(format!(
                "the page size must be 1 to {MAX_PAGE_SIZE}, not {}",
                self.page_size
            )));
        }
        let filter = self.filter.as_ref().map(|f| placeholders.filter(f));
        let projection =
            (!self.projection.is_empty()).then(|| placeholders.projection(&self.projection));
        let shape = format!(
            "{}|{}|{}|{}|{}|{}",
            repository.table(),
            kind.shape(),
            filter.as_deref().unwrap_or(""),
            projection.as_deref().unwrap_or(""),
            if self.forward { "asc" } else { "desc" },
            placeholders.canonical(),
        );
        let start = match &self.cursor {
            None => None,
            Some(cursor) => Some(
                repository
                    .cursor_keys()
                    .open(cursor, &scope(&shape, &self.caller), SystemTime::now())
                    .map_err(RepositoryError::Cursor)?,
            ),
        };
        let (names, values) = placeholders.into_maps();
        Ok(Listing {
            repository,
            kind,
            filter,
            projection,
            names,
            values,
            strong: self.consistency == Consistency::Strong,
            forward: self.forward,
            page_size: self.page_size,
            budget: self.budget,
            shape,
            caller: self.caller,
            start,
        })
    }
}

fn scope<'a>(shape: &'a str, caller: &'a str) -> CursorScope<'a> {
    CursorScope { shape, caller }
}

impl ListKind {
    fn shape(&self) -> String {
        match self {
            ListKind::Query {
                index,
                key_condition,
                ..
            } => format!("query|{}|{key_condition}", index.as_deref().unwrap_or("")),
            ListKind::Scan { index, segment } => format!(
                "scan|{}|{}",
                index.as_deref().unwrap_or(""),
                segment.map_or(String::new(), |s| format!("{}/{}", s.index, s.total)),
            ),
        }
    }
}

/// A request ready to run.
#[derive(Debug)]
pub(crate) struct Listing<'r, T> {
    repository: &'r Repository<T>,
    kind: ListKind,
    filter: Option<String>,
    projection: Option<String>,
    names: Option<Names>,
    values: Option<Values>,
    strong: bool,
    forward: bool,
    page_size: u32,
    budget: ReadBudget,
    shape: String,
    caller: String,
    start: Option<Item>,
}

impl<'r, T> Listing<'r, T>
where
    T: Serialize + DeserializeOwned,
{
    pub(crate) async fn page(self) -> Result<Page<T>, RepositoryError<T>> {
        let mut progress = Progress {
            start: self.start.clone(),
            ..Progress::default()
        };
        let mut items = Vec::new();
        let wanted = self.page_size as usize;
        let end = loop {
            if !progress.budget_left(&self.budget) {
                break PageEnd::Budget;
            }
            let limit = self.limit(&progress, wanted - items.len());
            let fetched = match self.fetch(&progress, limit).await {
                Ok(fetched) => fetched,
                // Nothing was read by the failed call, so the cursor of the
                // calls before it goes on exactly where they stopped.
                Err(error) if progress.calls > 0 && error.is_unavailable() => {
                    break PageEnd::Busy;
                }
                Err(error) => return Err(error),
            };
            progress.add(&fetched);
            self.learn(&fetched);
            for item in fetched.items {
                items.push(self.repository.decode(item)?);
            }
            if progress.start.is_none() {
                break PageEnd::Complete;
            }
            if items.len() >= wanted {
                break PageEnd::Full;
            }
        };
        Ok(Page {
            items,
            next_cursor: progress.start.as_ref().map(|key| self.seal(key)),
            end,
            consumed_units: progress.units,
            scanned_count: progress.scanned,
            count: progress.count,
            calls: progress.calls,
        })
    }

    pub(crate) fn stream(
        self,
    ) -> impl futures_core::Stream<Item = Result<T, RepositoryError<T>>> + Send + 'r
    where
        T: Send + 'r,
    {
        let progress = Progress {
            start: self.start.clone(),
            ..Progress::default()
        };
        let state = (self, progress, VecDeque::new(), false);
        futures_util::stream::unfold(
            state,
            |(listing, mut progress, mut buffer, mut done)| async move {
                loop {
                    if let Some(item) = buffer.pop_front() {
                        let decoded = listing.repository.decode(item);
                        return Some((decoded, (listing, progress, buffer, done)));
                    }
                    if done {
                        return None;
                    }
                    if progress.calls > 0 && progress.start.is_none() {
                        return None;
                    }
                    if !progress.budget_left(&listing.budget) {
                        done = true;
                        let cursor = progress.start.as_ref().map(|k| listing.seal(k));
                        let exhausted = RepositoryError::BudgetExhausted {
                            cursor: cursor.unwrap_or_default(),
                        };
                        return Some((Err(exhausted), (listing, progress, buffer, done)));
                    }
                    let limit = listing.limit(&progress, listing.page_size as usize);
                    match listing.fetch(&progress, limit).await {
                        Ok(fetched) => {
                            progress.add(&fetched);
                            listing.learn(&fetched);
                            buffer.extend(fetched.items);
                        }
                        Err(error) => {
                            done = true;
                            return Some((Err(error), (listing, progress, buffer, done)));
                        }
                    }
                }
            },
        )
    }

    fn limit(&self, progress: &Progress, wanted: usize) -> i32 {
        let learned = self.repository.item_bytes.load();
        progress.limit(&self.budget, wanted, learned, self.strong)
    }

    /// Remembers what an item of this table weighs, for the next listing's
    /// first call.
    fn learn(&self, fetched: &Fetched) {
        if fetched.scanned > 0 && fetched.units > 0.0 {
            let bytes = fetched.units * unit_bytes(self.strong) / fetched.scanned as f64;
            self.repository.item_bytes.store(bytes);
        }
    }

    fn seal(&self, key: &Item) -> String {
        self.repository.cursor_keys().seal(
            key,
            &scope(&self.shape, &self.caller),
            SystemTime::now(),
        )
    }
}
