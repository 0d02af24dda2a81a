//! Source stage: where losses come from (the Weiban OpenAPI).
//!
//! [`weiban::WeibanClient`] talks to the API within its limits and survives its faults;
//! [`model`] turns its loosely typed answers into [`crate::loss::Loss`] values;
//! [`errors`] names every error code it can answer with.

pub(crate) mod errors;
mod lenient;
pub(crate) mod model;
pub(crate) mod weiban;

pub(crate) use errors::WeibanError;
pub(crate) use weiban::{FetchError, WeibanClient, Window};
