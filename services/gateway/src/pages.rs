//! The authorization server's pages: sign-in (password, then the second factor), consent,
//! the account page (grants and two-step sign-in) and errors. Server-rendered HTML with
//! no script and no external asset (one stylesheet, served by the gateway itself), every
//! value escaped, labelled fields, native buttons (keyboard-operable), contrast above
//! WCAG AA.

use coffer_proto::pb;

/// The stylesheet at `/oauth/style.css`.
pub const STYLE: &str = "\
body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1a1a1a;margin:0}\
main{max-width:26rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;\
box-shadow:0 1px 3px rgba(0,0,0,.2)}\
h1{font-size:1.4rem;margin-top:0}\
label{display:block;margin:1rem 0 .3rem;font-weight:600}\
input[type=text],input[type=password],input[inputmode=numeric]{width:100%;box-sizing:border-box;padding:.6rem;\
border:1px solid #6b6b6b;border-radius:4px;font-size:1rem}\
input:focus,button:focus{outline:3px solid #0b57d0;outline-offset:2px}\
button{margin-top:1.4rem;padding:.6rem 1.2rem;font-size:1rem;border-radius:4px;\
border:1px solid #0b57d0;cursor:pointer}\
.primary{background:#0b57d0;color:#fff}\
.secondary{background:#fff;color:#0b57d0;margin-left:.6rem}\
.error{background:#fdecea;color:#8a1c12;padding:.6rem;border-radius:4px}\
dt{font-weight:600;margin-top:.6rem}dd{margin:0;word-break:break-all}\
ul{padding-left:1.2rem}code{font-size:.95em}\
.qr{display:block;width:14rem;height:14rem;margin:1rem auto}\
.codes{font-family:ui-monospace,monospace;font-size:1.05rem;columns:2}\
";

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} · Coffer</title><link rel=\"stylesheet\" href=\"/oauth/style.css\">\
         </head><body><main>{body}</main></body></html>",
        title = escape(title),
    )
}

/// The error line of a page after a failed attempt, announced to screen readers; empty
/// without one.
fn alert(error: Option<&str>) -> String {
    error.map_or_else(String::new, |message| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(message))
    })
}

/// The sign-in page of a pending request, with an error line after a failed attempt.
pub fn sign_in(consent: &pb::Consent, csrf: &str, error: Option<&str>) -> String {
    let error = alert(error);
    page(
        "Sign in",
        &format!(
            "<h1>Sign in to Coffer</h1>\
             <p><strong>{client}</strong> asks for access to <code>{resource}</code>.</p>{error}\
             <form method=\"post\" action=\"/oauth/login\">\
             <input type=\"hidden\" name=\"request\" value=\"{request}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"client_name\" value=\"{client}\">\
             <input type=\"hidden\" name=\"shown_resource\" value=\"{resource}\">\
             <label for=\"tenant\">Organization</label>\
             <input type=\"text\" id=\"tenant\" name=\"tenant\" required autocomplete=\"organization\">\
             <label for=\"username\">Username</label>\
             <input type=\"text\" id=\"username\" name=\"username\" required autocomplete=\"username\">\
             <label for=\"password\">Password</label>\
             <input type=\"password\" id=\"password\" name=\"password\" required \
             autocomplete=\"current-password\">\
             <button type=\"submit\" class=\"primary\">Sign in</button></form>",
            client = escape(&consent.client_name),
            resource = escape(&consent.resource),
            request = escape(&consent.request),
            csrf = escape(csrf),
        ),
    )
}

/// The second step of a sign-in: the code from the user's authenticator app, or a recovery
/// code.
pub fn second_factor(factor: &pb::SecondFactor, csrf: &str, error: Option<&str>) -> String {
    let error = alert(error);
    page(
        "Two-step sign-in",
        &format!(
            "<h1>Enter your code</h1>\
             <p>Signing in to <strong>{client}</strong>. Open your authenticator app and enter \
             the six-digit code for Coffer.</p>{error}\
             <form method=\"post\" action=\"/oauth/login/factor\">\
             <input type=\"hidden\" name=\"request\" value=\"{request}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"client_name\" value=\"{client}\">\
             <input type=\"hidden\" name=\"redirect_origin\" value=\"{origin}\">\
             <label for=\"code\">Code</label>\
             <input type=\"text\" id=\"code\" name=\"code\" required inputmode=\"numeric\" \
             autocomplete=\"one-time-code\" maxlength=\"24\" aria-describedby=\"code-help\">\
             <p id=\"code-help\">No device? Enter one of your recovery codes instead.</p>\
             <button type=\"submit\" class=\"primary\">Verify</button></form>",
            client = escape(&factor.client_name),
            origin = escape(&factor.redirect_origin),
            request = escape(&factor.request),
            csrf = escape(csrf),
        ),
    )
}

/// The consent page: who asks, where the browser goes back to, for what, with which scopes.
pub fn consent(consent: &pb::Consent, csrf: &str) -> String {
    let scopes: String = consent
        .scopes
        .iter()
        .map(|scope| {
            format!(
                "<li><code>{}</code>: {}</li>",
                escape(&scope.scope),
                escape(&scope.description)
            )
        })
        .collect();
    let user = consent
        .principal
        .strip_prefix("tenants/")
        .and_then(|rest| rest.split_once("/principals/"))
        .map_or_else(String::new, |(tenant, id)| {
            format!(
                "<p>Signed in as <strong>{}</strong> in <strong>{}</strong>.</p>",
                escape(id),
                escape(tenant)
            )
        });
    page(
        "Allow access",
        &format!(
            "<h1>Allow {client} access?</h1>{user}\
             <dl><dt>Application</dt><dd>{client}</dd>\
             <dt>Client ID</dt><dd><code>{client_id}</code></dd>\
             <dt>Returns you to</dt><dd><code>{host}</code></dd>\
             <dt>For</dt><dd><code>{resource}</code></dd></dl>\
             <p>It will be able to:</p><ul>{scopes}</ul>\
             <form method=\"post\" action=\"/oauth/consent\">\
             <input type=\"hidden\" name=\"request\" value=\"{request}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\" name=\"decision\" value=\"allow\" class=\"primary\">Allow</button>\
             <button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button>\
             </form>",
            client = escape(&consent.client_name),
            client_id = escape(&consent.client_id),
            host = escape(&consent.redirect_host),
            resource = escape(&consent.resource),
            request = escape(&consent.request),
            csrf = escape(csrf),
        ),
    )
}

/// The account page: the signed-in user's grants, each with a button that withdraws it, and
/// their two-step sign-in.
pub fn grants(grants: &[pb::Grant], totp: &pb::TotpStatus, csrf: &str) -> String {
    let rows: String = grants
        .iter()
        .map(|grant| {
            format!(
                "<li><strong>{client}</strong> for <code>{resource}</code>: {scopes}\
                 <form method=\"post\" action=\"/oauth/grants/revoke\">\
                 <input type=\"hidden\" name=\"grant\" value=\"{name}\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <button type=\"submit\" class=\"secondary\" \
                 aria-label=\"Revoke access of {client}\">Revoke</button></form></li>",
                client = escape(&grant.client_name),
                resource = escape(&grant.resource),
                scopes = escape(&grant.scopes.join(" ")),
                name = escape(&grant.name),
                csrf = escape(csrf),
            )
        })
        .collect();
    let body = if grants.is_empty() {
        "<p>You have not allowed any application.</p>".to_owned()
    } else {
        format!("<ul>{rows}</ul>")
    };
    let csrf = escape(csrf);
    let factor = if totp.enabled {
        format!(
            "<p>On: signing in asks for a code from your authenticator app. \
             {left} recovery codes left.</p>\
             <form method=\"post\" action=\"/oauth/totp/remove\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label for=\"code\">A code from your app, or a recovery code</label>\
             <input type=\"text\" id=\"code\" name=\"code\" required inputmode=\"numeric\" \
             autocomplete=\"one-time-code\" maxlength=\"24\">\
             <button type=\"submit\" class=\"secondary\">Turn off two-step sign-in</button>\
             </form>",
            left = totp.recovery_codes_left,
        )
    } else {
        format!(
            "<p>Off: signing in asks only for your password.</p>\
             <form method=\"post\" action=\"/oauth/totp/enroll\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\" class=\"primary\">Set up two-step sign-in</button>\
             </form>"
        )
    };
    page(
        "Your account",
        &format!("<h1>Applications you allowed</h1>{body}<h2>Two-step sign-in</h2>{factor}"),
    )
}

/// Enrollment: the QR code of the new secret (an `otpauth://` URI, as SVG), the secret to
/// type in instead, and a field for the first code.
pub fn enroll(enrollment: &pb::TotpEnrollment, csrf: &str, error: Option<&str>) -> String {
    let error = alert(error);
    let qr = qr_svg(&enrollment.uri).unwrap_or_default();
    page(
        "Set up two-step sign-in",
        &format!(
            "<h1>Set up two-step sign-in</h1>\
             <p>Scan this code with an authenticator app, or type the key into it.</p>{qr}\
             <dl><dt>Account</dt><dd><code>{account}</code></dd>\
             <dt>Key</dt><dd><code>{secret}</code></dd></dl>{error}\
             <form method=\"post\" action=\"/oauth/totp/confirm\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"secret\" value=\"{secret}\">\
             <input type=\"hidden\" name=\"uri\" value=\"{uri}\">\
             <input type=\"hidden\" name=\"account\" value=\"{account}\">\
             <label for=\"code\">The code the app shows</label>\
             <input type=\"text\" id=\"code\" name=\"code\" required inputmode=\"numeric\" \
             autocomplete=\"one-time-code\" maxlength=\"16\">\
             <button type=\"submit\" class=\"primary\">Turn on</button></form>",
            account = escape(&enrollment.account),
            secret = escape(&enrollment.secret),
            uri = escape(&enrollment.uri),
            csrf = escape(csrf),
        ),
    )
}

/// The recovery codes, shown this once.
pub fn recovery_codes(codes: &[String]) -> String {
    let items: String = codes
        .iter()
        .map(|code| format!("<li><code>{}</code></li>", escape(code)))
        .collect();
    page(
        "Recovery codes",
        &format!(
            "<h1>Two-step sign-in is on</h1>\
             <p>Keep these recovery codes somewhere safe: each signs you in once if you lose \
             your device. They are shown only now.</p>\
             <ul class=\"codes\">{items}</ul>\
             <p><a href=\"/oauth/grants\">Back to your account</a></p>"
        ),
    )
}

/// A QR code of an `otpauth://totp/` URI as inline SVG, labelled for screen readers; `None`
/// for anything else.
fn qr_svg(uri: &str) -> Option<String> {
    if !uri.starts_with("otpauth://totp/") {
        return None;
    }
    let code = qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .quiet_zone(true)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build();
    // The renderer writes an XML prolog first, which has no place inside HTML.
    let svg = &svg[svg.find("<svg")?..];
    Some(svg.replacen(
        "<svg",
        "<svg class=\"qr\" role=\"img\" aria-label=\"QR code of the two-step sign-in key\"",
        1,
    ))
}

/// An error page, for faults that must not redirect (an unknown client or redirect URI).
pub fn error(title: &str, message: &str) -> String {
    page(
        title,
        &format!(
            "<h1>{}</h1><p class=\"error\" role=\"alert\">{}</p>",
            escape(title),
            escape(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_escaped() {
        let consent = pb::Consent {
            request: "r\"><script>".into(),
            client_name: "<b>evil</b>".into(),
            client_id: "id'".into(),
            redirect_host: "h&".into(),
            resource: "https://x/<".into(),
            scopes: vec![pb::ScopeDescription {
                scope: "mcp:read".into(),
                description: "<i>".into(),
            }],
            principal: "tenants/a<b/principals/c>d".into(),
            ..Default::default()
        };
        for html in [
            consent_page(&consent),
            sign_in(&consent, "x\"", Some("<e>")),
        ] {
            assert!(
                !html.contains("<script>") && !html.contains("<b>evil"),
                "{html}"
            );
            assert!(!html.contains("<i>") && !html.contains("<e>") && !html.contains("a<b"));
        }
        assert!(consent_page(&consent).contains("&lt;b&gt;evil&lt;/b&gt;"));
    }

    #[test]
    fn the_two_step_pages_escape_every_value_and_qr_only_an_otpauth_uri() {
        let factor = pb::SecondFactor {
            request: "r\"><script>".into(),
            client_name: "<b>evil</b>".into(),
            principal: String::new(),
            redirect_origin: "http://x\"<".into(),
        };
        let enrollment = pb::TotpEnrollment {
            secret: "<s>".into(),
            uri: "otpauth://totp/Coffer:a?secret=<x>".into(),
            account: "a<b".into(),
        };
        for html in [
            second_factor(&factor, "q\"q", Some("<e>")),
            enroll(&enrollment, "q\"q", Some("<e>")),
            recovery_codes(&["<c>".to_owned()]),
        ] {
            for raw in [
                "<script>", "<b>evil", "<e>", "<s>", "<x>", "a<b", "<c>", "q\"q",
            ] {
                assert!(!html.contains(raw), "{raw} in {html}");
            }
        }
        assert!(enroll(&enrollment, "c", None).contains("<svg class=\"qr\""));
        let other = pb::TotpEnrollment {
            uri: "https://example.com/".into(),
            ..enrollment
        };
        assert!(!enroll(&other, "c", None).contains("<svg"));
    }

    fn consent_page(c: &pb::Consent) -> String {
        consent(c, "token")
    }
}
