//! The Lua scripts of `lua/`, compiled into the extension so an installed wheel carries them
//! (`skedulr.storage._scripts` resolves their `--- @include` lines).

macro_rules! lua {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../lua/", $name, ".lua")))),*]
    };
}

pub const SCRIPTS: &[(&str, &str)] = lua!(
    "_lib",
    "_hand_off",
    "submit",
    "submit_one",
    "bulk",
    "claim",
    "succeed",
    "fail",
    "hand_back",
    "leave_idle",
    "renew",
    "reap",
    "cancel",
    "resubmit",
    "purge",
    "set_progress",
    "fire_schedule",
    "schedule",
    "instance",
    "control",
    "migrate",
);
