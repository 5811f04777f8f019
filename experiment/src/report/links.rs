//! The report's "Hot paths" and "Running on several machines": links to the hand-written notes,
//! when they are in the folder.

use super::{Inputs, DEPLOY_MD, PROFILE_MD};
use std::fmt::Write as _;

/// A section linking each hand-written note that is present.
pub(super) fn sections(o: &mut String, i: &Inputs) {
    if i.has_profile {
        let _ = writeln!(
            o,
            "## Hot paths\n\nWhat limits each request kind, measured with a profiler, and the code changes that \
             would help: see [{PROFILE_MD}]({PROFILE_MD}).\n"
        );
    }
    if i.has_deploy {
        let _ = writeln!(
            o,
            "## Running on several machines\n\nSee [{DEPLOY_MD}]({DEPLOY_MD}).\n"
        );
    }
}
