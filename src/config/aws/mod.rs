//! The AWS dialect: Application Load Balancer target groups, listeners and rules written as
//! CloudFormation YAML (issue 14, in progress). So far: `template`, the CloudFormation
//! document (resources, their types, references between them, and clear errors for what a
//! file-based control plane cannot evaluate), and `attributes`, the target-group attributes
//! of the AWS document with their ranges, defaults and combination rules. The lowering into
//! the model comes next; until then no file is read as AWS. Must not: know xDS.

pub mod attributes;
pub mod template;
