//! The OpenAPI schemas of the domain's enums. The API shows them in their serde form (`"sms"`,
//! `"critical"`), so the schema is written here, beside the routes, rather than derived in the
//! domain, which knows nothing of HTTP.

use std::borrow::Cow;

use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr,
        schema::{ObjectBuilder, Schema, Type},
    },
};

use crate::domain::{Channel, Priority};

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
