//! The AWS dialect: Application Load Balancer target groups, listeners and rules written as
//! CloudFormation YAML. Reading: `template` (the CloudFormation document: resources, their
//! types, references between them, and clear errors for what a file-based control plane
//! cannot evaluate), `stack` (the template evaluated as CloudFormation evaluates it before
//! anything is read: parameters, conditions, mappings, pseudo parameters and intrinsic
//! functions, or refused by name), `target_groups` with `health_check` and `attributes` (ALB
//! target groups, their targets, checks and attributes, with the AWS document's ranges,
//! defaults and combination rules), and `listeners` with `conditions`, `actions` and
//! `balancer_attributes` (load balancers, listeners, rules, and the attributes of the first
//! two, whose keys are in `balancer_attribute_keys`). Lowering into the model: `lower`
//! (resources) and `routes` (conditions and actions). docs/aws-dialect.md has the map.
//! Must not: know xDS.

pub mod actions;
pub mod attributes;
mod balancer_attribute_keys;
pub mod balancer_attributes;
pub mod conditions;
pub mod health_check;
pub mod listeners;
pub mod lower;
mod lower_frontends;
mod lower_groups;
pub mod routes;
pub mod stack;
pub mod target_groups;
pub mod template;

use std::sync::Arc;

use super::dialect::{Dialect, DialectReader, Lowered};
use super::inputs::TemplateInputs;
use super::yaml::Node;
use crate::model::{Diagnostics, Model};

/// The AWS dialect: CloudFormation templates of Application Load Balancers.
pub struct Aws;

impl Dialect for Aws {
    fn name(&self) -> &'static str {
        "AWS"
    }

    fn detects(&self, document: &Node) -> bool {
        template::is_template(document)
    }

    fn reader(&self, inputs: &TemplateInputs) -> Box<dyn DialectReader> {
        Box::new(AwsReader {
            model: Model::default(),
            inputs: inputs.clone(),
            declared: Vec::new(),
        })
    }
}

/// What the templates of one load lower into, as they are read.
struct AwsReader {
    model: Model,
    /// Parameter overrides, region and stack name for the templates of this load.
    inputs: TemplateInputs,
    /// The parameters each template read declares: (file, name).
    declared: Vec<(Arc<str>, String)>,
}

impl DialectReader for AwsReader {
    fn read(&mut self, document: &Node, file: &Arc<str>, diagnostics: &mut Diagnostics) {
        let declared =
            lower::read_document(document, file, &self.inputs, &mut self.model, diagnostics);
        self.declared
            .extend(declared.into_iter().map(|name| (file.clone(), name)));
    }

    fn finish(mut self: Box<Self>, diagnostics: &mut Diagnostics) -> Lowered {
        stack::check_overrides(&self.inputs, &self.declared, diagnostics);
        let referenced = super::certificates::resolve(&mut self.model.certificates, diagnostics);
        Lowered {
            model: self.model,
            referenced,
        }
    }
}
