//! What a listing returns ([`Page`]) and what it may spend ([`ReadBudget`]).

/// The most a Query or Scan may read before it stops and hands back a
/// cursor: read capacity units and DynamoDB calls.
///
/// A filter saves nothing on reads (DynamoDB charges for every item it read,
/// also those the filter discarded), so a filter that matches little would
/// walk the whole table one page at a time. The budget stops it: the listing
/// returns what it found with a cursor to go on from.
///
/// The budget is checked before each call, and each call's `Limit` (the
/// items it may read) is sized to the units left: at the cost per item the
/// listing has seen, or before its first answer at the item size the
/// repository last saw on the table, or at 4 KB an item when it has seen
/// none. So a listing overshoots its units only when items are larger than
/// that estimate, by at most what one call reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBudget {
    pub(crate) units: u32,
    pub(crate) calls: u32,
}

impl ReadBudget {
    /// A query's budget when none is given: 64 read units in at most 8 calls.
    pub const QUERY_DEFAULT: ReadBudget = ReadBudget {
        units: 64,
        calls: 8,
    };

    /// At most `units` read capacity units (at least 1), in at most 8 calls.
    pub fn units(units: u32) -> ReadBudget {
        ReadBudget {
            units: units.max(1),
            calls: 8,
        }
    }

    /// At most `calls` DynamoDB calls (at least 1).
    pub fn calls(mut self, calls: u32) -> ReadBudget {
        self.calls = calls.max(1);
        self
    }

    /// The read units.
    pub fn read_units(&self) -> u32 {
        self.units
    }

    /// The calls.
    pub fn max_calls(&self) -> u32 {
        self.calls
    }
}

/// One page of a Query or Scan.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Page<T> {
    /// The matching items, in key order.
    pub items: Vec<T>,
    /// Where the next page starts, sealed (see [`CursorKeys`](crate::repository::CursorKeys));
    /// `None` when the listing is complete.
    pub next_cursor: Option<String>,
    /// Why the page ended.
    pub end: PageEnd,
    /// Read capacity units consumed, as DynamoDB reported them (estimated
    /// from the items' sizes when it reported none).
    pub consumed_units: f64,
    /// Items DynamoDB read (`ScannedCount`), before the filter.
    pub scanned_count: u64,
    /// Items that matched (`Count`).
    pub count: u64,
    /// DynamoDB calls made.
    pub calls: u32,
}

/// Why a [`Page`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageEnd {
    /// Nothing more matches: there is no next cursor.
    Complete,
    /// The page holds the page size of items.
    Full,
    /// The read budget ran out first: fewer items than the page size, and a
    /// cursor to go on from.
    Budget,
    /// The table was too busy for the next call (the capacity gate refused
    /// it, or DynamoDB kept throttling it beyond the retry policy), after
    /// the page had read something: fewer items than the page size, and a
    /// cursor to go on from, best followed after a pause. What the page read
    /// is not thrown away for want of capacity to read more. A page whose
    /// first call fails fails with that error.
    Busy,
}
