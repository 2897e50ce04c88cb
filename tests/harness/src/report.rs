//! The model's unload report: [`wskudp_kmodel::Report`] where the model exists. Elsewhere no
//! backend can produce one, and the type is uninhabited.

#[cfg(unix)]
pub use wskudp_kmodel::Report as ModelReport;

#[cfg(not(unix))]
pub use shell::ModelReport;

#[cfg(not(unix))]
mod shell {
    use std::convert::Infallible;
    use std::fmt;

    /// No kernel model on this host, so no report.
    #[derive(Clone, Debug)]
    pub struct ModelReport {
        never: Infallible,
    }

    impl ModelReport {
        /// Never called: no value exists.
        #[must_use]
        pub const fn is_clean(&self) -> bool {
            match self.never {}
        }
    }

    impl fmt::Display for ModelReport {
        fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.never {}
        }
    }

    impl serde::Serialize for ModelReport {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            match self.never {}
        }
    }
}
