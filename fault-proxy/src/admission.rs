//! What the capacity model says about a request: before it is forwarded
//! (admitted, or throttled with DynamoDB's answer) and, for a read, what it
//! cost once answered.

use std::collections::HashMap;

use bytes::Bytes;
use http::Response;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::batch;
use crate::capacity::Charge;
use crate::inject::FullBody;
use crate::operation::{self, Class};
use crate::proxy::{Call, Shared, lock};
use crate::rules::Effective;
use crate::units::HalfUnits;

/// What the capacity model decided before forwarding.
pub(crate) enum Admission {
    /// Forward this body; `held_back` goes into the response's unprocessed field.
    Forward {
        body: Bytes,
        held_back: Option<Map<String, Value>>,
    },
    /// Answer this instead.
    Reject(Response<FullBody>),
}

/// Asks the capacity model about a request before it is forwarded.
pub(crate) fn admit(shared: &Shared, call: &Call, body: Bytes) -> Admission {
    let now = Instant::now();
    match call.class {
        Class::Write => {
            let writes = operation::writes(&call.operation, &call.json);
            let effective: HashMap<&str, Effective> = writes
                .iter()
                .map(|w| (w.table, call.effective(w.table)))
                .collect();
            let charges: Vec<Charge<'_>> = writes
                .iter()
                .map(|w| Call::charge(w.table, &effective[w.table], w.key_source, w.cost))
                .collect();
            let result = lock(&shared.capacity).try_write(now, &charges);
            match result {
                Ok(()) => {
                    for charge in &charges {
                        shared.record(charge.table, &call.operation, |s| {
                            s.write_units += charge.cost.as_units()
                        });
                    }
                    Admission::Forward {
                        body,
                        held_back: None,
                    }
                }
                Err((table, reason)) => Admission::Reject(call.throttled(shared, &table, reason)),
            }
        }
        Class::BatchWrite => batch::admit_batch_write(shared, call, now, body),
        Class::BatchGet => batch::admit_batch_get(shared, call, now, body),
        Class::Read => {
            let tables = operation::tables(&call.operation, &call.json);
            let mut model = lock(&shared.capacity);
            for table in &tables {
                let effective = call.effective(table);
                let key = call.read_key();
                let charge = Call::charge(table, &effective, key, HalfUnits::default());
                if let Err(reason) = model.admit_read(now, &charge) {
                    drop(model);
                    return Admission::Reject(call.throttled(shared, table, reason));
                }
            }
            Admission::Forward {
                body,
                held_back: None,
            }
        }
        Class::Other => Admission::Forward {
            body,
            held_back: None,
        },
    }
}

/// Whether the table's reads are limited, so that they are priced exactly.
pub(crate) fn reads_limited(effective: &Effective) -> bool {
    effective
        .capacity
        .as_ref()
        .is_some_and(|capacity| capacity.read_units_per_second.is_some())
}

/// Charges what a successful read cost, into debt if need be.
pub(crate) fn charge_reads(shared: &Shared, call: &Call, costs: &[(String, HalfUnits)]) {
    let now = Instant::now();
    for (table, cost) in costs {
        let effective = call.effective(table);
        let key = call.read_key();
        let charge = Call::charge(table, &effective, key, *cost);
        lock(&shared.capacity).charge_read(now, &charge);
        shared.record(table, &call.operation, |s| s.read_units += cost.as_units());
    }
}
