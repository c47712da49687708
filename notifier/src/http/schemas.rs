//! The OpenAPI schemas of the domain's enums. The API shows them in their serde form (`"sms"`,
//! `"critical"`), so the schema is written here, beside the routes, rather than derived in the
//! domain, which knows nothing of HTTP. Also the schemas of fields whose rules live in the
//! domain as lists (the templates) or per item (push tokens).

use std::borrow::Cow;

use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr,
        schema::{ArrayBuilder, ObjectBuilder, Schema, Type},
    },
};

use crate::domain::{Channel, Priority, template::TEMPLATES};

/// `template`: one of the templates, each listed with the `data` fields it needs.
pub fn template_names() -> ObjectBuilder {
    let described: Vec<String> = TEMPLATES
        .iter()
        .map(|template| {
            let fields: Vec<String> = template
                .fields
                .iter()
                .map(|field| format!("`{field}`"))
                .collect();
            format!("`{}` (data: {})", template.name, fields.join(", "))
        })
        .collect();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!("The template: {}.", described.join("; "))))
        .enum_values(Some(TEMPLATES.iter().map(|template| template.name)))
}

/// `push_tokens`: the push service's device tokens, one per device, each 1 to 4,096 printable
/// ASCII characters.
pub fn push_tokens() -> ArrayBuilder {
    ArrayBuilder::new()
        .description(Some("The push service's device tokens, one per device."))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^[\x21-\x7E]{1,4096}$")),
        )
}

impl PartialSchema for Channel {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Channel::ALL.map(Channel::as_str)))
            .into()
    }
}

impl ToSchema for Channel {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Channel")
    }
}

impl PartialSchema for Priority {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "`critical` notifications (a password reset, a fraud alert) reach even the \
                 channels a user\nopted out of; `normal` ones respect every preference.",
            ))
            .enum_values(Some(
                [Priority::Critical, Priority::Normal].map(Priority::as_str),
            ))
            .into()
    }
}

impl ToSchema for Priority {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Priority")
    }
}
