//! Internals of the API server: storage, HTTP, schema validation, server-side apply, faults.

pub mod apply;
pub mod crd_checks;
pub mod events;
pub mod faults;
pub mod field_validation;
pub mod protobuf;
pub mod schema;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod tap;
