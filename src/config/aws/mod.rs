//! The AWS dialect: Application Load Balancer target groups, listeners and rules written as
//! CloudFormation YAML (issue 14, in progress). So far: `attributes`, the target-group
//! attributes of the AWS document with their ranges, defaults and combination rules. The
//! CloudFormation reader and the lowering into the model come next; until then no file is
//! read as AWS. Must not: know xDS.

pub mod attributes;
