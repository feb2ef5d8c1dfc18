//! Internals of the API server: storage, HTTP, schema validation, server-side apply, faults.

pub mod apply;
pub mod auth;
pub mod auth_hooks;
pub mod certificates;
pub mod crd_checks;
pub mod events;
pub mod faults;
pub mod field_validation;
pub mod json_out;
pub mod managed;
pub mod partial;
pub mod protobuf;
pub mod rbac;
pub mod release;
pub mod schema;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod tap;
