"""Projects."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.text import Description, FieldName, RequiredName

#: Most fields a record schema may have (each is a column and a part of every extraction prompt).
MAX_SCHEMA_FIELDS = 50


class ProjectCreate(BaseModel):
    """A new project; the schema defaults to the city-directory fields."""

    name: RequiredName
    description: Description = ""
    schema_fields: list[FieldName] | None = Field(
        default=None,
        max_length=MAX_SCHEMA_FIELDS,
        json_schema_extra={"uniqueItems": True},
        description="the record's fields, distinct; the city-directory ones when left out",
    )


class ProjectPublic(BaseModel):
    """A project as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    schema_fields: list[str]
    created_at: datetime
