//! What only tests need (feature `test-util`): the Lua scripts' sources and
//! the pure Rust models the property tests check them against. Not part of
//! the stable API.

/// The rate limiter's decision script (`limiter/gcra.lua`).
pub const LIMITER_SCRIPT: &str = crate::limiter::SCRIPT_SOURCE;

/// The rate limiter's script deciding several checks of one request
/// (`limiter/gcra_all.lua`).
pub const LIMITER_ALL_SCRIPT: &str = crate::limiter::ALL_SCRIPT_SOURCE;

/// The rate limiter's settle script (`limiter/settle.lua`).
pub const LIMITER_SETTLE_SCRIPT: &str = crate::limiter::SETTLE_SOURCE;

/// The capacity gate's script (`capacity/capacity.lua`).
pub const CAPACITY_SCRIPT: &str = crate::capacity::SCRIPT_SOURCE;

/// The limiter's pure decision function, the model of [`LIMITER_SCRIPT`]; the
/// decision over several checks, the model of [`LIMITER_ALL_SCRIPT`]; and its
/// settle function, the model of [`LIMITER_SETTLE_SCRIPT`].
pub mod gcra {
    pub use crate::limiter::gcra::*;
    pub use crate::limiter::gcra_all::{Part, decide_all};
    pub use crate::limiter::settle::settle;
}

/// The capacity gate's script as pure Rust, the model of [`CAPACITY_SCRIPT`].
pub mod capacity_model {
    pub use crate::capacity::model::*;
}
