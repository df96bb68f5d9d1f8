//! The RPKI state of an announcement at a time: judged by the export current then, and
//! `unknown` when there is none or it is older than the maximum RPKI data age.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::store::{Db, DbError};

use super::validate::{RpkiState, validate};
use super::vrp::Vrp;

/// Default maximum age of the RPKI data a state is judged by. Validators publish every few
/// minutes to an hour and ROA objects live for days; a day without a new export means the
/// feed stopped, and judging by it would hide every change since.
pub const DEFAULT_MAX_RPKI_AGE_S: i64 = 24 * 3600;

/// The RPKI state of `route` originated by `origin` (`None`: an AS_SET) at time `t`.
pub fn state_at(
    db: &Db,
    route: Ipv4Net,
    origin: Option<u32>,
    t: i64,
    max_age_s: i64,
) -> Result<RpkiState, DbError> {
    let Some(file) = db.rpki_file_at(t)? else {
        return Ok(RpkiState::Unknown(
            "no RPKI data generated at or before that time".into(),
        ));
    };
    let age = t - file.generated;
    if age > max_age_s {
        return Ok(RpkiState::Unknown(format!(
            "newest RPKI data is {} h old (maximum {} h)",
            age / 3600,
            max_age_s / 3600
        )));
    }
    let route = route.trunc();
    let vrps: Vec<Vrp> = db
        .rpki_vrps_covering(file.id, u32::from(route.network()), route.prefix_len())?
        .into_iter()
        .filter_map(|v| {
            Some(Vrp {
                prefix: Ipv4Net::new(Ipv4Addr::from(v.net), v.len).ok()?,
                max_len: v.max_len,
                asn: v.asn,
            })
        })
        .collect();
    Ok(validate(route, origin, &vrps))
}
