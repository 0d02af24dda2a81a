//! Weiban's error codes, what they mean, and what we do about each.

/// What the client does after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Fetch a fresh token once, then retry.
    RefreshToken,
    /// Fewer requests in flight, back off, retry.
    FewerInFlight,
    /// Wait out the rate-limit block, retry.
    WaitOutBlock,
    /// Back off with jitter, retry.
    Retry,
    /// Retrying cannot help: surface it.
    GiveUp,
}

/// A failed Weiban call. Never carries the secret, the token or a URL that holds them.
#[derive(Debug, thiserror::Error)]
pub enum WeibanError {
    #[error(
        "Weiban rejected the credentials (errcode {code}: {meaning}); check `weiban.corp_id` and `weiban.secret`"
    )]
    Credentials { code: i64, meaning: &'static str },
    #[error("Weiban {endpoint} answered errcode {code} ({meaning}): {errmsg}")]
    Api {
        endpoint: &'static str,
        code: i64,
        meaning: &'static str,
        errmsg: String,
    },
    #[error("Weiban {endpoint} answered HTTP {status}")]
    Http { endpoint: &'static str, status: u16 },
    #[error("Weiban {endpoint} could not be reached: {reason}")]
    Transport {
        endpoint: &'static str,
        reason: String,
    },
    #[error("Weiban {endpoint} sent an answer that is not the documented JSON: {reason}")]
    Malformed {
        endpoint: &'static str,
        reason: String,
    },
    #[error(
        "Weiban {endpoint}'s total_count is {total}, more than the {limit} losses one window may hold; the live window does not advance: if that many are real, backfill shorter periods (`churn-alert backfill --from … --to …`)"
    )]
    WindowTooLarge {
        endpoint: &'static str,
        total: u64,
        limit: u64,
    },
    #[error("Weiban {endpoint} answered inconsistently: {reason}")]
    Inconsistent {
        endpoint: &'static str,
        reason: String,
    },
}

impl WeibanError {
    pub(crate) fn recovery(&self) -> Recovery {
        match self {
            Self::Credentials { .. } => Recovery::GiveUp,
            Self::Api { code, .. } => match code {
                10001 => Recovery::RefreshToken,
                10052 => Recovery::FewerInFlight,
                10053 => Recovery::WaitOutBlock,
                // Parameter and endpoint errors are ours to fix; retrying repeats them.
                10049 | 20201 | 20202 => Recovery::GiveUp,
                _ => Recovery::Retry,
            },
            Self::Http { status, .. } if *status >= 500 || *status == 429 => Recovery::Retry,
            Self::Http { .. } => Recovery::GiveUp,
            Self::Transport { .. } | Self::Malformed { .. } => Recovery::Retry,
            Self::Inconsistent { .. } | Self::WindowTooLarge { .. } => Recovery::GiveUp,
        }
    }

    /// The errcode, for metrics; `None` for faults below the API.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Credentials { code, .. } | Self::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The documented meaning of a Weiban errcode.
pub(crate) fn meaning(code: i64) -> &'static str {
    match code {
        0 => "ok",
        10001 => "认证错误: bad or expired access_token, or wrong corp_id/secret",
        10049 => "参数错误: a request parameter is invalid",
        10052 => "并发超限: more than 4 requests in flight",
        10053 => "频率超限: more than 600 requests per minute",
        20201 => "staff_id 错误: no such staff member",
        20202 => "type 或 order 不合法: invalid type or order",
        _ => UNDOCUMENTED,
    }
}

const UNDOCUMENTED: &str = "undocumented error code";

/// The `errcode` label of a Weiban error: the documented codes by number, any other as
/// `other`, so that a server answering nonsense cannot grow the metric without bound.
pub(crate) fn errcode_label(code: Option<i64>) -> String {
    match code {
        None => "none".to_owned(),
        Some(code) if meaning(code) == UNDOCUMENTED => "other".to_owned(),
        Some(code) => code.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcode_labels_are_bounded() {
        assert_eq!(errcode_label(Some(10001)), "10001");
        assert_eq!(errcode_label(Some(987_654_321)), "other");
        assert_eq!(errcode_label(Some(-7)), "other");
        assert_eq!(errcode_label(None), "none");
    }
}
