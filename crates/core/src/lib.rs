//! Slipway's pure core: the plan language and everything decided from a plan without touching the
//! world — validation, the dependency graph, batches, windows, risk and policy. No async runtime,
//! database, network or process code lives here.

pub mod calendar;
pub mod coordination;
pub mod dag;
pub mod diag;
pub mod duration;
pub mod lifecycle;
pub mod plan;
pub mod policy;
pub mod risk;
pub mod rollout;
pub mod source;
pub mod strategy;
pub mod template;
pub mod yaml;

pub use diag::{Code, Diagnostic, Severity};
pub use plan::{LoadedPlan, Plan, PlanErrors, load};
pub use source::{Source, Span, Spanned};
