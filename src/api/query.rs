//! Query strings. Each route's parameters are one serde type deriving `IntoParams`: the OpenAPI document's
//! parameters and the parser are that type. `Query<T>` reads a query string into `T`, checking each value against
//! the parameter's own schema first (so the document's types, ranges and values are the ones enforced), with
//! OpenAI's errors: `unknown_parameter`, `invalid_type`, `integer_below_min_value`/`integer_above_max_value` and
//! `invalid_value`. Rules a type cannot carry are checked once right after parsing (`QueryParams::check`) and
//! stated in the parameters' descriptions.
//!
//! Writing: a scalar is `name=value` (the last one counts when repeated); a list is `name=a&name=b`, also written
//! `name[]=a`; a keyed object is `name[KEY]=VALUE` (OpenAPI's `deepObject`).

use std::collections::BTreeMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::error::{ApiError, ApiResult};
use super::fields::{invalid_type, invalid_value};
use super::ids;
use crate::store::{ListQuery, Order, PageRequest};

/// A route's query parameters.
pub trait QueryParams: DeserializeOwned + IntoParams {
    /// The rules the type cannot carry (stated in the parameters' descriptions), checked right after parsing.
    fn check(&self) -> ApiResult<()> {
        Ok(())
    }
}

/// The query string, read as `T`.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: QueryParams> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let params: T = parse(parts.uri.query().unwrap_or_default())?;
        params.check()?;
        Ok(Query(params))
    }
}

/// Reads `query` as `T`, each value checked against its parameter's schema.
fn parse<T: QueryParams>(query: &str) -> ApiResult<T> {
    let schemas: Vec<(String, Value)> = T::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .map(|param| (param.name, serde_json::to_value(param.schema).unwrap_or_default()))
        .collect();
    let mut object = Map::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let (name, bracket) = match key.split_once('[') {
            Some((name, rest)) if rest.ends_with(']') => (name, Some(&rest[..rest.len() - 1])),
            _ => (key.as_ref(), None),
        };
        let Some((_, schema)) = schemas.iter().find(|(known, _)| known == name) else {
            return Err(unknown(&key));
        };
        let schema = value_schema(schema);
        match (has_type(schema, "array"), has_type(schema, "object"), bracket) {
            (true, _, None | Some("")) => {
                let list = object.entry(name).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = list {
                    list.push(Value::String(value.into_owned()));
                }
            }
            (_, true, Some(keyed)) => {
                let map = object.entry(name).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = map {
                    map.insert(keyed.to_string(), Value::String(value.into_owned()));
                }
            }
            (false, false, None) => {
                object.insert(name.to_string(), scalar(name, schema, value.into_owned())?);
            }
            _ => return Err(unknown(&key)),
        }
    }
    serde_json::from_value(Value::Object(object))
        .map_err(|err| ApiError::invalid(format!("Invalid query string: {err}.")).code("invalid_value"))
}

/// The schema a parameter's value takes: its own, or the one member of its `oneOf` or `allOf` (as when a default
/// wraps an inlined enum).
fn value_schema(schema: &Value) -> &Value {
    for key in ["oneOf", "allOf"] {
        if let Some([only]) = schema[key].as_array().map(Vec::as_slice) {
            return only;
        }
    }
    schema
}

/// Whether `schema` is of JSON type `kind`.
fn has_type(schema: &Value, kind: &str) -> bool {
    match &schema["type"] {
        Value::String(type_name) => type_name == kind,
        Value::Array(types) => types.iter().any(|type_name| type_name == kind),
        _ => false,
    }
}

/// The value of the scalar parameter `name`, as its schema types it: an integer within its range, a boolean, or a
/// string among its values.
fn scalar(name: &str, schema: &Value, value: String) -> ApiResult<Value> {
    if has_type(schema, "integer") {
        let Ok(n) = value.parse::<u64>() else {
            return Err(invalid_type(name, "an integer", &Value::String(value)));
        };
        let min = schema["minimum"].as_u64().unwrap_or(0);
        let max = schema["maximum"].as_u64().unwrap_or(u64::MAX);
        if n < min || n > max {
            let code = if n < min { "integer_below_min_value" } else { "integer_above_max_value" };
            let message = format!("Invalid '{name}': expected a value between {min} and {max}, but got {n} instead.");
            return Err(ApiError::invalid(message).param(name).code(code));
        }
        return Ok(Value::from(n));
    }
    if has_type(schema, "boolean") {
        return match value.as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(invalid_type(name, "a boolean", &Value::String(value))),
        };
    }
    if let Some(values) = schema["enum"].as_array() {
        if !values.iter().any(|known| *known == value.as_str()) {
            let supported: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
            return Err(invalid_value(name, &value, &supported));
        }
    }
    Ok(Value::String(value))
}

/// A pattern of text without control characters (what `char::is_control` names).
pub const NO_CONTROL_CHARACTERS: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// 400 `unknown_parameter`.
fn unknown(key: &str) -> ApiError {
    ApiError::invalid(format!("Unknown parameter: '{key}'.")).param(key).code("unknown_parameter")
}

/// An extra a read shows (checked by `Include::from_query`, which also names those this server never produces).
#[derive(Deserialize, ToSchema)]
#[serde(rename = "include")]
#[allow(dead_code)] // Names the values in the document; `Include::from_query` reads them.
pub enum IncludeValue {
    #[serde(rename = "message.output_text.logprobs")]
    Logprobs,
    #[serde(rename = "reasoning.encrypted_content")]
    EncryptedReasoning,
}

/// The order of a list by creation time.
#[derive(Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    Asc,
    #[default]
    Desc,
}

impl From<SortOrder> for Order {
    fn from(order: SortOrder) -> Self {
        match order {
            SortOrder::Asc => Order::Asc,
            SortOrder::Desc => Order::Desc,
        }
    }
}

/// `include` alone (reading or adding items).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncludeQuery {
    /// Extras to show (repeatable; also written `include[]`).
    #[param(value_type = Option<Vec<IncludeValue>>, inline)]
    #[serde(default)]
    pub include: Vec<String>,
}

impl QueryParams for IncludeQuery {}

/// The paging parameters of a list of items.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// An item id from a previous page: list the items after it.
    after: Option<String>,
    /// How many items to list.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    /// By creation time: `desc` (newest first) or `asc`.
    #[param(default = "desc", inline)]
    order: Option<SortOrder>,
    /// Extras to show (repeatable; also written `include[]`).
    #[param(value_type = Option<Vec<IncludeValue>>, inline)]
    #[serde(default)]
    pub include: Vec<String>,
}

impl QueryParams for PageParams {}

impl PageParams {
    /// The page asked for.
    pub fn page(&self) -> PageRequest {
        let order = self.order.unwrap_or_default().into();
        PageRequest { after: self.after.clone(), limit: self.limit.unwrap_or(20), order }
    }
}

/// The query of GET /v1/responses/{id}.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RetrieveParams {
    /// Extras to show (repeatable; also written `include[]`).
    #[param(value_type = Option<Vec<IncludeValue>>, inline)]
    #[serde(default)]
    pub include: Vec<String>,
    /// Stream the response's events from the start as `text/event-stream` (live while a background one runs).
    #[param(default = false)]
    pub stream: Option<bool>,
    /// Only with `stream=true` (otherwise a 400): only the events after this `sequence_number`.
    #[param(minimum = 0)]
    pub starting_after: Option<u64>,
    /// Accepted for compatibility; replays carry no obfuscation padding, whichever value is asked for.
    #[allow(dead_code)]
    include_obfuscation: Option<bool>,
}

impl QueryParams for RetrieveParams {
    fn check(&self) -> ApiResult<()> {
        if self.starting_after.is_some() && self.stream != Some(true) {
            return Err(ApiError::invalid("'starting_after' is only valid with stream=true.")
                .param("starting_after")
                .code("invalid_value"));
        }
        Ok(())
    }
}

/// The query of GET /v1/conversations.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationListParams {
    /// A conversation id from a previous page: list the conversations after it.
    after: Option<String>,
    /// How many conversations to list.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    /// By creation time: `desc` (newest first) or `asc`.
    #[param(default = "desc", inline)]
    order: Option<SortOrder>,
    /// `metadata[KEY]=VALUE` (repeatable): only the objects whose metadata has every such pair exactly.
    #[param(style = DeepObject, explode, inline)]
    #[serde(default)]
    metadata: MetadataFilter,
    /// Threadline extension: only those whose preview contains this text (case-insensitive).
    #[param(pattern = "^[^\\u0000]*$")]
    search: Option<String>,
}

impl QueryParams for ConversationListParams {
    fn check(&self) -> ApiResult<()> {
        check_list(self.after.as_deref(), &self.metadata, self.search.as_deref())
    }
}

impl ConversationListParams {
    /// The list asked for.
    pub fn list(self) -> ListQuery {
        let (limit, order) = (self.limit.unwrap_or(20), self.order.unwrap_or_default().into());
        let metadata = self.metadata.0.into_iter().collect();
        ListQuery { after: self.after, limit, order, metadata, search: self.search, parent: None, roots: false }
    }
}

/// The query of GET /v1/responses (a threadline extension).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResponseListParams {
    /// A response id from a previous page: list the responses after it.
    after: Option<String>,
    /// How many responses to list.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    /// By creation time: `desc` (newest first) or `asc`.
    #[param(default = "desc", inline)]
    order: Option<SortOrder>,
    /// `metadata[KEY]=VALUE` (repeatable): only the responses whose metadata has every such pair exactly.
    #[param(style = DeepObject, explode, inline)]
    #[serde(default)]
    metadata: MetadataFilter,
    /// Only those whose preview contains this text (case-insensitive).
    #[param(pattern = "^[^\\u0000]*$")]
    search: Option<String>,
    /// Only the responses that continue this one (its branches).
    #[param(max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    previous_response_id: Option<String>,
    /// Only chain roots: responses continuing nothing, or a response that is deleted, expired or absent.
    #[param(default = false)]
    root: Option<bool>,
}

impl QueryParams for ResponseListParams {
    fn check(&self) -> ApiResult<()> {
        check_list(self.after.as_deref(), &self.metadata, self.search.as_deref())?;
        if self.previous_response_id.as_deref().is_some_and(|id| !ids::is_possible(id)) {
            return Err(ApiError::invalid("Invalid 'previous_response_id': not a response id.")
                .param("previous_response_id")
                .code("invalid_value"));
        }
        Ok(())
    }
}

impl ResponseListParams {
    /// The list asked for.
    pub fn list(self) -> ListQuery {
        let (limit, order) = (self.limit.unwrap_or(20), self.order.unwrap_or_default().into());
        let metadata = self.metadata.0.into_iter().collect();
        let (parent, roots) = (self.previous_response_id, self.root.unwrap_or(false));
        ListQuery { after: self.after, limit, order, metadata, search: self.search, parent, roots }
    }
}

/// `metadata[KEY]=VALUE` pairs a list filters by: a key is not empty, and neither it nor its value holds a control
/// character.
#[derive(Default, Deserialize)]
#[serde(transparent)]
pub struct MetadataFilter(BTreeMap<String, String>);

impl PartialSchema for MetadataFilter {
    fn schema() -> RefOr<Schema> {
        let text = |min_length| {
            ObjectBuilder::new().schema_type(Type::String).min_length(min_length).pattern(Some(NO_CONTROL_CHARACTERS))
        };
        let object = ObjectBuilder::new().schema_type(Type::Object);
        object.property_names(Some(text(Some(1)))).additional_properties(Some(text(None))).into()
    }
}

impl ToSchema for MetadataFilter {}

/// The rules of every list's `after`, `metadata[KEY]` and `search`.
fn check_list(after: Option<&str>, metadata: &MetadataFilter, search: Option<&str>) -> ApiResult<()> {
    ids::cursor(after)?;
    for (key, value) in &metadata.0 {
        if key.is_empty() || key.chars().chain(value.chars()).any(char::is_control) {
            return Err(ApiError::invalid(format!(
                "Invalid 'metadata[{key}]': a metadata key is not empty, and neither it nor its value holds a \
                 control character."
            ))
            .param(format!("metadata[{key}]"))
            .code("invalid_value"));
        }
    }
    if search.is_some_and(|text| text.contains('\0')) {
        return Err(ApiError::invalid("Invalid 'search': it holds a NUL character.")
            .param("search")
            .code("invalid_value"));
    }
    Ok(())
}

/// The query of GET /v1/responses/{id}/tree (a threadline extension).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TreeParams {
    /// Levels below the response to include.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    depth: Option<u32>,
    /// Most nodes to include.
    #[param(minimum = 1, maximum = 1000, default = 200)]
    limit: Option<u32>,
}

impl QueryParams for TreeParams {}

impl TreeParams {
    /// The levels and nodes asked for.
    pub fn bounds(&self) -> (u32, u32) {
        (self.depth.unwrap_or(100), self.limit.unwrap_or(200))
    }
}
