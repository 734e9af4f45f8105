//! Alerting and retraining rules (`rules/*.toml`): which monitors a rule covers, a condition over
//! a closed window's findings, how long it must persist, and what to do (alert, retrain). Loading
//! and validation are in `file`; `eval` turns a stream of windows into actions. Pure and
//! synchronous: the caller feeds windows in and delivers the actions.

pub mod eval;
pub mod file;

pub use eval::{
    Action, AlertKind, BiasFact, DriftFact, Evidence, Match, RulesState, ViolationFact,
    WindowFacts, evaluate,
};
pub use file::{
    AlertSpec, Condition, DriftStatistic, Persistence, RetrainSpec, Rule, RuleError, RuleSet,
    Severity,
};
