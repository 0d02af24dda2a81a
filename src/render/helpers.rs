//! Template helpers: time in the configured zone, days known, delete_by wording, joining,
//! truncation.

use crate::zone::Zone;
use handlebars::{
    handlebars_helper, Context, Handlebars, Helper, HelperDef, RenderContext, RenderError,
    RenderErrorReason, ScopedJson,
};
use serde_json::Value;

/// Formats unix seconds as `YYYY-MM-DD HH:MM` in the configured zone: `{{time outflow_at}}`.
/// An optional second parameter is a chrono format: `{{time outflow_at "%m-%d %H:%M"}}`.
///
/// The default format is parsed once, here, not at every call: every entry of every message
/// shows a time, and parsing the format string each time cost about a sixth of the helper.
struct TimeHelper {
    tz: Zone,
    /// [`DEFAULT_TIME_FORMAT`], parsed (`None` only if chrono refused it: then it is parsed
    /// at each call, as any other format).
    default: Option<Vec<chrono::format::Item<'static>>>,
}

const DEFAULT_TIME_FORMAT: &str = "%Y-%m-%d %H:%M";

impl TimeHelper {
    fn new(tz: Zone) -> Self {
        let default = chrono::format::StrftimeItems::new(DEFAULT_TIME_FORMAT)
            .parse_to_owned()
            .ok();
        Self { tz, default }
    }
}

impl HelperDef for TimeHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let seconds = h.param(0).and_then(|p| p.value().as_i64()).ok_or_else(|| {
            RenderErrorReason::ParamTypeMismatchForName("time", "0".into(), "unix seconds".into())
        })?;
        let format = h.param(1).and_then(|p| p.value().as_str());
        let text = match crate::time::local(self.tz, seconds) {
            Some(t) => {
                // A bad format string is a template error, not a panic.
                use std::fmt::Write as _;
                let mut out = String::new();
                let written = match (format, &self.default) {
                    (None, Some(items)) => write!(out, "{}", t.format_with_items(items.iter())),
                    (format, _) => {
                        write!(out, "{}", t.format(format.unwrap_or(DEFAULT_TIME_FORMAT)))
                    }
                };
                written.map_err(|_| {
                    RenderErrorReason::Other(format!(
                        "`{}` is not a valid time format",
                        format.unwrap_or(DEFAULT_TIME_FORMAT)
                    ))
                })?;
                out
            }
            None => seconds.to_string(),
        };
        Ok(ScopedJson::Derived(Value::String(text)))
    }
}

/// Whole days from `added_at` to `outflow_at`, when both are known and in order.
pub(crate) fn days_between(added_at: Option<i64>, outflow_at: i64) -> Option<i64> {
    added_at
        .filter(|a| *a > 0 && *a <= outflow_at)
        .map(|a| (outflow_at - a) / 86_400)
}

handlebars_helper!(delete_by_text: |who: str| match who {
    "customer" => "客户删除员工",
    "staff" => "员工删除客户",
    "both" => "互删",
    _ => "未知",
});

// `{{directions_text directions}}`: 客户删除员工 3 · 员工删除客户 1 · 互删 1 · 未知 2, zeros left
// out. The same four words as `delete_by_text` (README.zh-CN's glossary).
handlebars_helper!(directions_text: |d: object| {
    let count = |k: &str| d.get(k).and_then(Value::as_u64).unwrap_or(0);
    [("客户删除员工", "customer"), ("员工删除客户", "staff"), ("互删", "both"), ("未知", "unknown")]
        .iter()
        .filter(|(_, key)| count(key) > 0)
        .map(|(label, key)| format!("{label} {}", count(key)))
        .collect::<Vec<_>>()
        .join(" · ")
});

/// WeCom's add-way codes, in words.
pub(crate) fn add_way_text(code: i64) -> Option<&'static str> {
    Some(match code {
        1 => "扫描二维码",
        2 => "搜索手机号",
        3 => "名片分享",
        4 => "群聊",
        5 => "手机通讯录",
        6 => "微信联系人",
        8 => "安装第三方应用时自动添加",
        9 => "搜索邮箱",
        10 => "视频号添加",
        11 => "日程参与人",
        12 => "会议参与人",
        13 => "添加微信好友对应的企业微信",
        14 => "智慧硬件专属客服",
        15 => "上门服务客服",
        16 => "获客链接",
        17 => "定制开发",
        18 => "需求回复",
        201 => "内部成员共享",
        202 => "管理员/负责人分配",
        _ => return None,
    })
}

// `{{days_known_between added_at outflow_at}}`: whole days known, or null.
handlebars_helper!(days_known_between: |added_at: Value, outflow_at: i64| {
    days_between(added_at.as_i64(), outflow_at).map_or(Value::Null, Value::from)
});

handlebars_helper!(join: |items: array, sep: str| {
    items.iter().map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }).collect::<Vec<_>>().join(sep)
});

handlebars_helper!(truncate: |text: str, max_chars: u64| {
    let max = max_chars as usize;
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
});

// `{{{mention staff.id}}}`: a WeCom `<@userid>` mention, for ids that can only be user ids
// ([`super::escape::is_userid`]); anything else renders as nothing. Triple braces: the mention
// must not pass the markdown escaping, which would break ids with `_`.
handlebars_helper!(mention: |id: str| {
    if super::escape::is_userid(id) { format!("<@{id}>") } else { String::new() }
});

pub(crate) fn register(registry: &mut Handlebars<'static>, tz: Zone) {
    registry.register_helper("mention", Box::new(mention));
    registry.register_helper("time", Box::new(TimeHelper::new(tz)));
    registry.register_helper("delete_by_text", Box::new(delete_by_text));
    registry.register_helper("directions_text", Box::new(directions_text));
    registry.register_helper("days_known_between", Box::new(days_known_between));
    registry.register_helper("join", Box::new(join));
    registry.register_helper("truncate", Box::new(truncate));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, data: &Value) -> Result<String, RenderError> {
        let mut registry = Handlebars::new();
        register(&mut registry, Zone::shanghai());
        registry.render_template(template, data)
    }

    /// 2025-01-08 05:37:13 UTC is 13:37 in Shanghai.
    const AT: i64 = 1_736_314_633;

    #[test]
    fn time_shows_the_zones_local_time_in_the_default_or_a_given_format() {
        let data = serde_json::json!({ "at": AT });
        assert_eq!(render("{{time at}}", &data).unwrap(), "2025-01-08 13:37");
        assert_eq!(
            render(r#"{{time at "%m-%d %H:%M:%S"}}"#, &data).unwrap(),
            "01-08 13:37:13"
        );
        // The default, parsed once, and the same format given again agree.
        assert_eq!(
            render(r#"{{time at "%Y-%m-%d %H:%M"}}|{{time at}}"#, &data).unwrap(),
            "2025-01-08 13:37|2025-01-08 13:37"
        );
    }

    #[test]
    fn a_bad_time_format_is_a_template_error_that_names_it() {
        let data = serde_json::json!({ "at": AT });
        let err = render(r#"{{time at "%Q"}}"#, &data).unwrap_err();
        assert!(
            err.to_string().contains("`%Q` is not a valid time format"),
            "{err}"
        );
        assert!(render(r#"{{time "x"}}"#, &data).is_err());
    }
}
