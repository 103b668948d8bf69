//! Scan: every item of the table or an index, one segment of a parallel
//! scan at a time, always inside a read budget the caller chose.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ConfigError;
use crate::repository::expression::Placeholders;
use crate::repository::listing::{ListKind, Listing, Request, listing_setters};
use crate::repository::page::{Page, ReadBudget};
use crate::repository::{Consistency, Repository, RepositoryError};

/// One segment of a parallel scan (`Segment` of `TotalSegments`): each
/// segment is its own page sequence, and together they cover every item
/// exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub(crate) index: u32,
    pub(crate) total: u32,
}

impl Segment {
    /// DynamoDB's most segments.
    pub const MAX_TOTAL: u32 = 1_000_000;

    /// Segment `index` (from 0) of `total`.
    pub fn new(index: u32, total: u32) -> Result<Segment, ConfigError> {
        if total == 0 || total > Segment::MAX_TOTAL || index >= total {
            return Err(ConfigError::invalid(
                "scan segment",
                "needs 1 to 1000000 segments and an index below their number",
            ));
        }
        Ok(Segment { index, total })
    }

    /// Every segment of a scan in `total` segments.
    pub fn all(total: u32) -> Result<Vec<Segment>, ConfigError> {
        Segment::new(0, total)?;
        Ok((0..total).map(|index| Segment { index, total }).collect())
    }
}

/// A scan being built; [`page`](Scan::page) or [`stream`](Scan::stream) runs
/// it. Made by [`Repository::scan`].
#[derive(Debug)]
pub struct Scan<'r, T> {
    repository: &'r Repository<T>,
    index: Option<String>,
    segment: Option<Segment>,
    common: Request,
}

impl<T> Repository<T>
where
    T: Serialize + DeserializeOwned,
{
    /// A scan of the whole table (or an index, [`Scan::index`]). The budget
    /// is required: a scan without one is a table walk waiting to happen.
    pub fn scan(&self, budget: ReadBudget) -> Scan<'_, T> {
        Scan {
            repository: self,
            index: None,
            segment: None,
            common: Request::new(budget),
        }
    }
}

impl<'r, T> Scan<'r, T>
where
    T: Serialize + DeserializeOwned,
{
    listing_setters!();

    /// Scans the declared index `name`.
    pub fn index(mut self, name: impl Into<String>) -> Self {
        self.index = Some(name.into());
        self
    }

    /// Only this segment of a parallel scan.
    pub fn segment(mut self, segment: Segment) -> Self {
        self.segment = Some(segment);
        self
    }

    /// One page, within the budget.
    pub async fn page(self) -> Result<Page<T>, RepositoryError<T>> {
        self.build()?.page().await
    }

    /// Every item, within the budget (ending with
    /// [`RepositoryError::BudgetExhausted`] when it runs out first).
    pub fn stream(
        self,
    ) -> Result<
        impl futures_core::Stream<Item = Result<T, RepositoryError<T>>> + Send + 'r,
        RepositoryError<T>,
    >
    where
        T: Send + 'r,
    {
        Ok(self.build()?.stream())
    }

    fn build(self) -> Result<Listing<'r, T>, RepositoryError<T>> {
        if let Some(name) = &self.index {
            let index = self.repository.index_named(name).ok_or_else(|| {
                RepositoryError::InvalidQuery(format!(
                    "index `{name}` is not declared on this repository (Repository::with_index)"
                ))
            })?;
            if index.is_global() && self.common.consistency == Consistency::Strong {
                return Err(RepositoryError::InvalidQuery(
                    "a global secondary index cannot be read with strong consistency".to_owned(),
                ));
            }
        }
        self.common.into_listing(
            self.repository,
            ListKind::Scan {
                index: self.index,
                segment: self.segment,
            },
            Placeholders::default(),
        )
    }
}
