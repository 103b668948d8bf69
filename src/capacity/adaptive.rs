//! How the fleet's shared rate adapts when DynamoDB throttles anyway.

use crate::error::ConfigError;

/// How the shared rate adapts when DynamoDB throttles despite the gate
/// (capacity lowered, other writers on the table, a hot key): additive
/// increase, multiplicative decrease, like TCP's congestion control.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adaptive {
    decrease: f64,
    increase: f64,
    floor: f64,
}

impl Default for Adaptive {
    /// Cut to 70% on a throttle, climb back by 5% of the capacity per second,
    /// never below 5% of it.
    fn default() -> Self {
        Adaptive {
            decrease: 0.7,
            increase: 0.05,
            floor: 0.05,
        }
    }
}

impl Adaptive {
    /// A builder starting from [`Adaptive::default`], each factor named:
    /// `Adaptive::builder().decrease(0.5).increase(0.1).floor(0.1).build()?`.
    pub fn builder() -> AdaptiveBuilder {
        AdaptiveBuilder(Adaptive::default())
    }

    /// The factor a throttle cuts the rate by.
    pub fn decrease(&self) -> f64 {
        self.decrease
    }

    /// The share of the capacity the rate climbs back per second.
    pub fn increase(&self) -> f64 {
        self.increase
    }

    /// The share of the capacity the rate never goes below.
    pub fn floor(&self) -> f64 {
        self.floor
    }
}

/// Builds an [`Adaptive`].
#[derive(Debug, Clone)]
pub struct AdaptiveBuilder(Adaptive);

impl AdaptiveBuilder {
    /// The factor a throttle cuts the rate by (0 < d < 1; default 0.7).
    pub fn decrease(mut self, factor: f64) -> Self {
        self.0.decrease = factor;
        self
    }

    /// The share of the capacity the rate climbs back per second (> 0;
    /// default 0.05).
    pub fn increase(mut self, share: f64) -> Self {
        self.0.increase = share;
        self
    }

    /// The share of the capacity the rate never goes below (0 < f <= 1;
    /// default 0.05).
    pub fn floor(mut self, share: f64) -> Self {
        self.0.floor = share;
        self
    }

    /// Checks the factors and builds the setting.
    pub fn build(self) -> Result<Adaptive, ConfigError> {
        let Adaptive {
            decrease,
            increase,
            floor,
        } = self.0;
        if !(decrease > 0.0 && decrease < 1.0) {
            return Err(ConfigError::invalid("decrease", "must be between 0 and 1"));
        }
        if !(increase > 0.0 && increase.is_finite()) {
            return Err(ConfigError::invalid("increase", "must be above zero"));
        }
        if !(floor > 0.0 && floor <= 1.0) {
            return Err(ConfigError::invalid(
                "floor",
                "must be above 0 and at most 1",
            ));
        }
        Ok(Adaptive {
            decrease,
            increase,
            floor,
        })
    }
}
