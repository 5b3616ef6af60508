//! The schema's one extension: the document limits that async-graphql does
//! not check, and null propagation for failed fields.
//!
//! async-graphql passes every field resolution through each registered
//! extension, boxing one future per extension and field, even when the
//! extension only looks at the whole request. A page of 50 users with their
//! orders resolves about a thousand fields, so the three request-level
//! hooks share this one extension.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerResult, Variables};

use super::{limits, nulls};

/// Checks each document against the limits below, then makes failed fields
/// null in each response.
pub struct DocumentChecks {
    /// Maximum number of selections once fragments are expanded.
    pub max_expanded: usize,
    /// Maximum number of field aliases.
    pub max_aliases: usize,
}

impl ExtensionFactory for DocumentChecks {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentChecksExtension {
            max_expanded: self.max_expanded,
            max_aliases: self.max_aliases,
            document: Mutex::default(),
        })
    }
}

struct DocumentChecksExtension {
    max_expanded: usize,
    max_aliases: usize,
    /// The request's parsed document, kept to map response keys (aliases)
    /// back to fields when nulls propagate.
    document: Mutex<Option<ExecutableDocument>>,
}

#[async_trait::async_trait]
impl Extension for DocumentChecksExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        // Before `next`, which checks the recursion depth by expanding
        // every spread.
        limits::check_expansion(query, self.max_expanded)?;
        let document = next.run(ctx, query, variables).await?;
        limits::check_aliases(&document, self.max_aliases)?;
        *self
            .document
            .lock()
            .unwrap_or_else(|error| error.into_inner()) = Some(document.clone());
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        let document = self
            .document
            .lock()
            .unwrap_or_else(|error| error.into_inner())
            .take();
        if let Some(document) = document {
            nulls::propagate(
                &mut response,
                &document,
                operation_name,
                &ctx.schema_env.registry,
            );
        }
        response
    }
}
