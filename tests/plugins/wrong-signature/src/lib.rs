//! A component that names the `ballast:policy/policy` interface but exports `evaluate` with
//! another signature, to prove the host refuses it at load rather than at the first call.

wit_bindgen::generate!({ path: "wit", world: "plugin" });

struct Wrong;

impl exports::ballast::policy::policy::Guest for Wrong {
    fn validate_settings(_: String) -> Result<(), String> {
        Ok(())
    }

    fn evaluate(nodes: u32) -> Result<String, String> {
        Ok(nodes.to_string())
    }
}

export!(Wrong);
