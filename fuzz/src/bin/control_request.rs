//! Fuzz target `control_request`: see `outpost_fuzz::control`. Under AFL++ (`cargo afl fuzz`)
//! it is the persistent-mode loop; with paths it replays their files.

fn main() {
    outpost_fuzz::main_for("control_request", outpost_fuzz::control::run);
}
