//! driftd: data-quality, drift and bias monitoring for models in production, reading and
//! writing SageMaker Model Monitor's files. See DESIGN.md for the flow of one object.

pub mod decode;
pub mod profile;
