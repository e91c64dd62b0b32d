//! A plugin built against `ballast:policy@0.2.0`, a version newer than any host serves yet, to
//! prove such a plugin is refused at load with both versions named. Its WIT is a trimmed
//! future contract: the host refuses it before looking at the shape.

#[cfg(target_arch = "wasm32")]
mod plugin {
    wit_bindgen::generate!({
        inline: "
            package ballast:policy@0.2.0;

            interface snapshot {
                resource snapshot {
                    taken-at-millis: func() -> u64;
                    capacity-reservations: func() -> list<string>;
                }
            }

            interface policy {
                use snapshot.{snapshot};
                record evaluation { decisions: list<string>, state: option<list<u8>> }
                validate-settings: func(settings: string) -> result<_, string>;
                evaluate: func(snapshot: borrow<snapshot>) -> result<evaluation, string>;
            }

            world plugin {
                export policy;
            }
        ",
        world: "plugin",
    });

    use exports::ballast::policy::policy::{Evaluation, Guest};

    struct Future;

    impl Guest for Future {
        fn validate_settings(_: String) -> Result<(), String> {
            Ok(())
        }

        fn evaluate(snapshot: &ballast::policy::snapshot::Snapshot) -> Result<Evaluation, String> {
            Ok(Evaluation { decisions: snapshot.capacity_reservations(), state: None })
        }
    }

    export!(Future);
}
