"""Project record schemas, versioned: the fields a project's records have, with their meaning.

`projects.schema_fields` keeps the current version's field names (what the CSV columns, the
ground-truth check and the offline extractor read); each version in full is a row here, and a
run records the version it used (`RunConfig.schema_version`, `schema_definitions`). A change adds
a version and never rewrites one, so a run's schema can always be shown as it was.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.session import Base, UTCDateTime, utcnow


class ProjectSchema(Base):
    """One version of a project's record schema."""

    __tablename__ = "project_schemas"
    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    #: 1, 2, … per project.
    version: Mapped[int] = mapped_column(Integer)
    #: [{name, description, required, example}, …] in column order.
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(200), default="local")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
