//! The GraphiQL playground that browsers get from `GET /graphql`.
//!
//! The page and every file it loads come from the gateway itself, so the
//! playground works without internet access. The files are GraphiQL's and
//! React's UMD builds from npm, kept in `gateway/assets/graphiql/` (fetched
//! by `scripts/update-graphiql.sh`) and embedded at compile time. Each is
//! served under a path that contains its package version, so browsers may
//! cache it for good.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine;

use super::GRAPHQL_PATH;

/// Prefix of the paths of the playground's files.
pub const ASSETS_PATH: &str = "/graphql/assets";

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// A versioned path always serves the same bytes, so browsers may cache a
/// file for a year without revalidating it.
const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// One file of an npm package, embedded in the binary.
struct Asset {
    package: &'static str,
    /// The package version, which must match `assets/graphiql/VERSIONS`.
    version: &'static str,
    file: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

impl Asset {
    fn path(&self) -> String {
        format!(
            "{ASSETS_PATH}/{}-{}/{}",
            self.package, self.version, self.file
        )
    }
}

const REACT: Asset = Asset {
    package: "react",
    version: "18.3.1",
    file: "react.production.min.js",
    content_type: JAVASCRIPT,
    body: include_bytes!("../../assets/graphiql/react.production.min.js"),
};

const REACT_DOM: Asset = Asset {
    package: "react-dom",
    version: "18.3.1",
    file: "react-dom.production.min.js",
    content_type: JAVASCRIPT,
    body: include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
};

const GRAPHIQL_SCRIPT: Asset = Asset {
    package: "graphiql",
    version: "3.9.0",
    file: "graphiql.min.js",
    content_type: JAVASCRIPT,
    body: include_bytes!("../../assets/graphiql/graphiql.min.js"),
};

const GRAPHIQL_STYLE: Asset = Asset {
    package: "graphiql",
    version: "3.9.0",
    file: "graphiql.min.css",
    content_type: CSS,
    body: include_bytes!("../../assets/graphiql/graphiql.min.css"),
};

/// Scripts in the order the page must load them, because GraphiQL's UMD
/// build reads the `React` and `ReactDOM` globals when it loads.
const SCRIPTS: [&Asset; 3] = [&REACT, &REACT_DOM, &GRAPHIQL_SCRIPT];

// NOTE: the files are sent uncompressed, about 1.5 MB in all, because the
// gateway has no response compression.
const ASSETS: [&Asset; 4] = [&REACT, &REACT_DOM, &GRAPHIQL_SCRIPT, &GRAPHIQL_STYLE];

/// Builds one route per embedded file. A path under [`ASSETS_PATH`] that
/// names no file falls through to the router's 404.
pub fn router() -> Router {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        let headers = [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, ASSET_CACHE_CONTROL),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ];
        let body = asset.body;
        router.route(&asset.path(), get(move || async move { (headers, body) }))
    })
}

/// Renders the playground page with a fresh CSP nonce.
pub fn page() -> Response {
    let nonce = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let mut response = Html(page_html(&nonce)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&content_security_policy(&nonce))
            .expect("a base64 nonce is a valid header value"),
    );
    // The nonce must differ on every response.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Allows the gateway's own files, plus the page's inline script and the
/// style elements that GraphiQL adds at run time, both marked with the
/// nonce. GraphiQL's CSS embeds its fonts and icons as `data:` URLs.
fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'none'; \
         script-src 'self' 'nonce-{nonce}'; \
         style-src 'self' 'nonce-{nonce}'; \
         connect-src 'self'; \
         img-src 'self' data:; \
         font-src 'self' data:; \
         base-uri 'none'; \
         form-action 'none'; \
         frame-ancestors 'none'"
    )
}

/// The headers editor's first content: where the caller's token goes.
/// GraphiQL keeps it out of browser storage.
const DEFAULT_HEADERS: &str = "{\n  \"Authorization\": \"Bearer PASTE-YOUR-TOKEN-HERE\"\n}\n";

/// The token placeholder of [`DEFAULT_HEADERS`], which the gateway answers
/// with a hint instead of a parse error.
pub const TOKEN_PLACEHOLDER: &str = "PASTE-YOUR-TOKEN-HERE";

/// The query editor's first content: how to authenticate, then an example.
const DEFAULT_QUERY: &str = "\
# Every operation needs a bearer token. Paste one into the Headers tab
# below, replacing PASTE-YOUR-TOKEN-HERE, then re-fetch the schema. The
# quickstart prints an admin token and a regular user's token when it
# starts; in a deployment, get one from your identity provider.
#
# A regular user may read only their own user record and orders; the
# admin role may do everything. `me` is null for a token whose subject is
# no user id, such as the quickstart's admin.

query Me {
  me {
    id
    name
    orders { id status total }
  }
}
";

/// Builds the page. Its inline script hands the nonce to GraphiQL through
/// `__webpack_nonce__`, because the react-remove-scroll package bundled in
/// GraphiQL sets that nonce on the style elements it adds when a dialog opens.
fn page_html(nonce: &str) -> String {
    let style = GRAPHIQL_STYLE.path();
    let default_headers = serde_json::to_string(DEFAULT_HEADERS).unwrap_or_default();
    let default_query = serde_json::to_string(DEFAULT_QUERY).unwrap_or_default();
    let scripts: String = SCRIPTS
        .iter()
        .map(|script| format!("    <script src=\"{}\"></script>\n", script.path()))
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Lintas GraphQL</title>
    <link rel="stylesheet" href="{style}">
    <style nonce="{nonce}">
      body {{ margin: 0; height: 100vh; overflow: hidden; }}
      #graphiql {{ height: 100vh; }}
    </style>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
{scripts}    <script nonce="{nonce}">
      window.__webpack_nonce__ = document.currentScript.nonce;
      const fetcher = GraphiQL.createFetcher({{ url: "{GRAPHQL_PATH}" }});
      ReactDOM.createRoot(document.getElementById("graphiql")).render(
        React.createElement(GraphiQL, {{
          fetcher,
          defaultEditorToolsVisibility: "headers",
          defaultHeaders: {default_headers},
          defaultQuery: {default_query},
        }}),
      );
    </script>
  </body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `scripts/update-graphiql.sh` writes the versions it fetched here.
    const VERSIONS: &str = include_str!("../../assets/graphiql/VERSIONS");

    #[test]
    fn asset_versions_match_fetched_packages() {
        for asset in ASSETS {
            let line = format!("{} {} ", asset.package, asset.version);
            assert!(
                VERSIONS.lines().any(|entry| entry.starts_with(&line)),
                "{} {} is not in assets/graphiql/VERSIONS:\n{VERSIONS}",
                asset.package,
                asset.version
            );
        }
    }
}
