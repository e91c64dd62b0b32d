//! A policy that reads nothing and proposes nothing: the floor for instantiate-and-call cost.

use ballast_sdk::prelude::*;

pub struct Empty;

impl Policy for Empty {
    type Settings = ();
    type State = ();

    fn evaluate(_: &dyn Snapshot, _: &(), _: &mut ()) -> Result<Vec<Decision>, String> {
        Ok(Vec::new())
    }
}

ballast_sdk::export_policy!(Empty);
