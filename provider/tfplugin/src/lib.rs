//! A small framework for Terraform/OpenTofu providers speaking plugin
//! protocol 6: the go-plugin handshake and AutoMTLS ([`serve`]), the
//! DynamicValue codec ([`Value`], [`Type`]), schemas, diagnostics, and the
//! planning order every resource shares. It knows nothing of any particular
//! provider: a binary implements [`Provider`], [`Resource`],
//! [`DataSource`] and [`Function`] and calls [`serve`].

mod diagnostics;
pub mod modifiers;
mod planning;
mod provider;
mod schema;
pub mod serve;
mod server;
pub mod validators;
pub mod value;

pub use diagnostics::{AttributePath, Diagnostic, Diagnostics, PathStep, Severity};
pub use modifiers::PlanModifier;
pub use provider::{
    ApplyRequest, DataSource, Function, FunctionError, FunctionSignature, Parameter, PlanRequest, PlanResult, Provider,
    Resource, StateResult,
};
pub use schema::{Attribute, Block, NestedBlock, Nesting, Presence, Schema, SchemaError};
pub use serve::{ServeError, ServeOptions, serve};
pub use server::{ProviderServer, ProviderService, RegistryError};
pub use value::{Number, Refinements, Type, Value};

/// Generated protocol types, for tests and advanced uses.
pub use magma_protocol::tfplugin6 as proto;

/// The async-trait attribute the traits are declared with; implementations
/// use `#[tfplugin::async_trait]`.
pub use async_trait::async_trait;
