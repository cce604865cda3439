"""Projects."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.text import Description, Name


class ProjectCreate(BaseModel):
    """A new project; the schema defaults to the city-directory fields."""

    name: Name = Field(min_length=1)
    description: Description = ""
    schema_fields: list[str] | None = None


class ProjectPublic(BaseModel):
    """A project as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    schema_fields: list[str]
    created_at: datetime
