//! The configuration error every builder of the crate returns.
//!
//! Each layer has its own error enum next to it (`retry`, `limiter`,
//! `capacity`, `repository`); only [`ConfigError`] is shared, so this module
//! depends on no layer.

/// A setting was given a value it cannot work with. Returned by constructors
/// and builders, so bad configuration fails at start-up, not under load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The named setting is out of range.
    #[error("invalid {setting}: {reason}")]
    Invalid {
        /// The setting, as the builder method names it.
        setting: &'static str,
        /// What is wrong with the value and what would be accepted.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            setting,
            reason: reason.into(),
        }
    }
}
