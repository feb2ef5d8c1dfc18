//! Internals of the API server: storage, HTTP, schema validation, server-side apply, faults.

pub mod apply;
pub mod faults;
pub mod schema;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod tap;
