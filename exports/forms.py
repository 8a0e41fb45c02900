from __future__ import annotations

import math
import re
from datetime import UTC
from pathlib import Path
from typing import Any, ClassVar, cast
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from connectors.models import Connector
from exports import filters as export_filters
from exports.engine import MAX_PARTS
from exports.incremental import CURSOR_TYPES
from exports.models import Dataset, Export, recipients_of
from exports.schedule import DEFAULT_DURATION_MONTHS, add_months
from exports.sources import MYSQL_SCHEMES
from exportsite import outbound

DELIMITERS = [(",", "Comma ,"), (";", "Semicolon ;"), ("\t", "Tab"), ("|", "Pipe |")]


USABLE_DATASETS = Dataset.objects.usable().select_related("database")


class SourceStepForm(forms.ModelForm):
    """Wizard step 1: what to export."""

    dataset = forms.ModelChoiceField(
        queryset=USABLE_DATASETS,
        empty_label="Choose a dataset",
    )
    columns = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="None ticked: every column."
    )

    class Meta:
        model = Export
        fields: ClassVar[list[str]] = ["name", "dataset", "columns"]

    def __init__(self, *args, sandbox_id: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the datasets of the export's own sandbox: any other is "not a valid choice".
        self.datasets = USABLE_DATASETS.filter(database__sandbox_id=sandbox_id or self.instance.sandbox_id)
        cast(forms.ModelChoiceField, self.fields["dataset"]).queryset = self.datasets
        dataset = self.chosen_dataset()
        if dataset is not None:
            cast(forms.MultipleChoiceField, self.fields["columns"]).choices = [
                (c["name"], f"{c['name']} ({c['type']})") for c in dataset.columns
            ]

    def chosen_dataset(self) -> Dataset | None:
        key = self.data.get(self.add_prefix("dataset")) if self.is_bound else self.initial.get("dataset")
        if key is None:
            return self.instance.dataset if self.instance.dataset_id else None
        if isinstance(key, Dataset):
            return key if self.datasets.filter(pk=key.pk).exists() else None
        try:
            return self.datasets.get(pk=key)
        except (Dataset.DoesNotExist, ValueError, TypeError):
            return None


class FileStepForm(forms.ModelForm):
    """Wizard step 2: the files."""

    csv_delimiter = forms.ChoiceField(choices=DELIMITERS, initial=",", label="CSV delimiter")
    rows_per_file = forms.IntegerField(
        min_value=1,
        initial=settings.EXPORT_DEFAULT_ROWS_PER_FILE,
        help_text="A new part file starts after this many rows.",
    )

    class Meta:
        model = Export
        fields: ClassVar[list[str]] = [
            "file_format",
            "compression",
            "csv_delimiter",
            "csv_header",
            "spreadsheet_safe",
            "rows_per_file",
            "file_template",
        ]
        labels: ClassVar[dict[str, str]] = {
            "csv_header": "CSV header row",
            "spreadsheet_safe": "Spreadsheet-safe CSV",
            "file_template": "File name template",
        }
        help_texts: ClassVar[dict[str, str]] = {
            "compression": "CSV and NDJSON: none or gzip. Parquet: snappy (fastest), zstd, gzip or none.",
            "spreadsheet_safe": "A spreadsheet runs a cell such as =HYPERLINK(...) as a formula; the ' stops it. "
            "Programs reading the files want them off.",
            "file_template": "Tokens: %EXPORT_NAME%, %DATASET_NAME%, %DATETIME(YYYYMMdd_HHmmss)%, "
            "%EXPORT_ID%, %DELIVERY_ID%. Files are named <template>-<part>.<extension>.",
        }

    # The template and the format/compression pair are checked by the model
    # (Export.clean_fields), which the admin goes through too.
    def clean_file_template(self):
        return self.cleaned_data["file_template"].strip()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["spreadsheet_safe"].required = False  # absent: automatic

    def clean_spreadsheet_safe(self):
        return self.cleaned_data.get("spreadsheet_safe") or Export.SpreadsheetSafe.AUTO

    def clean_rows_per_file(self):
        rows_per_file = self.cleaned_data["rows_per_file"]
        dataset = self.instance.dataset if self.instance.dataset_id else None
        estimate = dataset.estimated_rows if dataset is not None else None
        if dataset is not None and estimate and math.ceil(estimate / rows_per_file) > MAX_PARTS:
            raise ValidationError(
                f"At most {MAX_PARTS:,} files per run: {dataset.qualified_name} has about {estimate:,} rows, "
                f"so choose at least {math.ceil(estimate / MAX_PARTS):,} rows per file."
            )
        return rows_per_file


class DestinationStepForm(forms.ModelForm):
    """Wizard step 3: where the files go: a connector, or Desktop (a download)."""

    connector = forms.ModelChoiceField(
        queryset=Connector.objects.none(),
        required=False,
        empty_label="Desktop: download from the run report",
        label="Destination",
    )

    def __init__(self, *args, sandbox_id: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the connectors of the export's own sandbox: any other is "not a valid choice",
        # exactly as one that doesn't exist.
        cast(forms.ModelChoiceField, self.fields["connector"]).queryset = Connector.objects.usable_in(
            sandbox_id or self.instance.sandbox_id
        )

    class Meta:
        model = Export
        fields: ClassVar[list[str]] = ["connector", "folder_template"]
        labels: ClassVar[dict[str, str]] = {"folder_template": "Delivery folder template"}
        help_texts: ClassVar[dict[str, str]] = {
            "folder_template": "For each run of a repeating export. Empty: the delivery GUID. Tokens: "
            "%DELIVERY_ID%, %EXPORT_NAME%, %DATASET_NAME%, %DATETIME(YYYYMMdd)%, %EXPORT_TIME%, "
            "%DESTINATION_INSTANCE_NAME%..."
        }

    def clean_folder_template(self):
        return self.cleaned_data["folder_template"].strip()


CADENCES = [
    ("day", "Every day"),
    ("3h", "Every 3 hours"),
    ("6h", "Every 6 hours"),
    ("9h", "Every 9 hours"),
    ("12h", "Every 12 hours"),
]
_LOCAL_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class ScheduleStepForm(forms.ModelForm):
    """Wizard step 4: when. Times are entered in the user's time zone (the active one)
    and stored in UTC, with the zone kept so daily runs keep their wall-clock time."""

    schedule_start = forms.DateTimeField(
        required=False,
        widget=_LOCAL_INPUT,
        label="Start",
        help_text="One shot: empty to launch by hand. Daily runs happen at this time of day.",
    )
    schedule_end = forms.DateTimeField(
        required=False,
        widget=_LOCAL_INPUT,
        label="End",
        help_text="Repeating exports stop after this. Empty: six months after the start.",
    )
    cadence = forms.ChoiceField(choices=CADENCES, initial="day", label="Runs", required=False)
    cursor_column = forms.ChoiceField(required=False, label="Cursor column")
    safety_lag_minutes = forms.IntegerField(
        min_value=0,
        max_value=7 * 24 * 60,
        required=False,
        initial=0,
        label="Safety lag (minutes)",
        help_text="Timestamp cursors only: rows newer than this are left for the next run.",
    )

    field_order = [  # noqa: RUF012 - Django's own attribute: read once per form, never changed
        "export_type",
        "schedule_start",
        "cadence",
        "schedule_end",
        "cursor_column",
        "safety_lag_minutes",
        "report_recipients",
        "notify_on_success",
    ]

    class Meta:
        model = Export
        fields: ClassVar[list[str]] = [
            "export_type",
            "schedule_start",
            "schedule_end",
            "report_recipients",
            "notify_on_success",
        ]
        widgets: ClassVar[dict[str, type[forms.Widget] | forms.Widget]] = {
            "export_type": forms.RadioSelect,
            "report_recipients": forms.TextInput(attrs={"placeholder": "ops@example.com, bi@example.com"}),
        }
        labels: ClassVar[dict[str, str]] = {
            "report_recipients": "Report recipients",
            "notify_on_success": "E-mail them on success too",
        }
        help_texts: ClassVar[dict[str, str]] = {
            "report_recipients": "They get the report of every failed run. Comma-separated."
        }

    def __init__(self, *args, time_zone: str = "UTC", now=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.time_zone = time_zone
        self.now = now or timezone.now()
        export = self.instance
        columns = export.dataset.columns if export.dataset_id else []
        usable = [c for c in columns if c["type"] in CURSOR_TYPES]
        cast(forms.ChoiceField, self.fields["cursor_column"]).choices = [("", "Choose a column")] + [
            (c["name"], f"{c['name']} ({c['type']}{', not indexed' if c.get('indexed') is False else ''})")
            for c in usable
        ]
        self.fields["cursor_column"].help_text = "Incremental: an ever-growing id or timestamp."
        if export.dataset_id and export.dataset.primary_key == []:
            self.fields["cursor_column"].help_text += (
                f" {export.dataset.qualified_name} has no primary key, so runs can't catch rows that commit late"
                " with an older id or timestamp (a long transaction): pick a cursor that grows in commit order,"
                " or a table with a primary key."
            )
        if not self.is_bound:
            if export.cadence:
                self.initial["cadence"] = export.cadence
            default_cursor = export.dataset.cursor_column if export.dataset_id else ""
            self.initial["cursor_column"] = export.cursor_column or default_cursor
            self.initial["safety_lag_minutes"] = export.safety_lag_seconds // 60

    def clean_report_recipients(self):
        addresses = recipients_of(Export(report_recipients=self.cleaned_data["report_recipients"]))
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                raise ValidationError(f"{address!r} is not an e-mail address") from None
        return ", ".join(addresses)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = cleaned.get("export_type")
        start, end = cleaned.get("schedule_start"), cleaned.get("schedule_end")
        cadence = cleaned.get("cadence") or "day"
        if kind == Export.Type.ONE_SHOT:
            if start is not None and start <= self.now and start != self.instance.schedule_start:
                self.add_error("schedule_start", "The start is in the past: choose a later time, or leave it empty.")
            cleaned["schedule_end"] = None
            return cleaned
        if kind not in {Export.Type.PERIODIC_FULL, Export.Type.INCREMENTAL}:
            return cleaned
        if start is None:
            self.add_error("schedule_start", "A repeating export needs a start: its date and time of day.")
            return cleaned
        if kind == Export.Type.PERIODIC_FULL and cadence != "day":
            self.add_error("cadence", "A periodic full export runs once a day.")
        if cadence not in dict(CADENCES):
            self.add_error("cadence", "Choose every day, or every 3, 6, 9 or 12 hours.")
        if end is None:
            end = add_months(start, DEFAULT_DURATION_MONTHS)
            cleaned["schedule_end"] = end
        if end <= start:
            self.add_error("schedule_end", "The end must come after the start.")
        if kind == Export.Type.INCREMENTAL:
            column = self.instance.dataset.column(cleaned.get("cursor_column") or "")
            if column is None:
                self.add_error("cursor_column", "An incremental export needs a cursor column: an id or a timestamp.")
            elif column["type"] not in CURSOR_TYPES:
                self.add_error("cursor_column", f"{column['name']!r} is {column['type']}: not usable as a cursor.")
        return cleaned

    def save(self, commit=True):
        export = super().save(commit=False)
        cleaned = self.cleaned_data
        cadence = cleaned.get("cadence") or "day"
        export.schedule_timezone = self.time_zone
        if export.export_type == Export.Type.ONE_SHOT:
            export.schedule_unit, export.schedule_interval = "", None
        elif cadence == "day":
            export.schedule_unit, export.schedule_interval = "day", 1
        else:
            export.schedule_unit, export.schedule_interval = "hour", int(cadence.rstrip("h"))
        if export.export_type == Export.Type.INCREMENTAL:
            export.cursor_column = cleaned.get("cursor_column") or ""
            export.safety_lag_seconds = (cleaned.get("safety_lag_minutes") or 0) * 60
        if commit:
            export.save()
        return export


def _value_widget(logical_type: str | None, operator: str) -> forms.Widget:
    """The input a filter's value takes: a number box, a date or date-time picker,
    true/false, a list for "is one of", text otherwise."""
    if operator == "in":
        return forms.Textarea(attrs={"rows": 2, "placeholder": "one value per line"})
    if logical_type == "integer":
        return forms.NumberInput(attrs={"step": "1"})
    if logical_type in {"float", "decimal"}:
        return forms.NumberInput(attrs={"step": "any"})
    if logical_type in {"timestamp", "datetime"}:
        return forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"})
    if logical_type == "date":
        return forms.DateInput(attrs={"type": "date"})
    if logical_type == "boolean":
        return forms.Select(choices=[("", "—"), ("true", "true"), ("false", "false")])
    return forms.TextInput()


class FilterForm(forms.Form):
    """One row of the filter builder: a column of the dataset (with its type), an
    operator that fits the type, and a value input that fits both. Every field stays
    text, so a value that doesn't fit gets the validation's own message
    (exports/filters.py), whichever input sent it."""

    column = forms.CharField(required=False, max_length=200, widget=forms.Select(attrs={"class": "refit"}))
    operator = forms.CharField(required=False, max_length=20, widget=forms.Select(attrs={"class": "refit"}))
    value = forms.CharField(required=False, max_length=2000)
    value_to = forms.CharField(required=False, max_length=2000, label="and")

    def __init__(self, *args, columns: list[dict] | None = None, time_zone: str = "UTC", **kwargs):
        super().__init__(*args, **kwargs)
        self.columns = {column["name"]: column for column in columns or []}
        self.zone = _zone(time_zone)
        if not self.is_bound:  # a saved filter: its times shown in the user's time zone
            self.initial = {**self.initial}  # a copy: the formset's initial is the export's own list
            for name in ("value", "value_to"):
                if self.initial.get(name) and self._type(self.initial.get("column")) == "timestamp":
                    self.initial[name] = _local_text(str(self.initial[name]), self.zone)
        column, operator = self._current("column"), self._current("operator")
        self.logical_type = self._type(column)
        choices = [("", "Choose a column")] + [
            (name, f"{name} ({described['type']})") for name, described in self.columns.items()
        ]
        if column and column not in self.columns:  # kept, so the error shows and nothing is lost
            choices.append((column, f"{column} (not in this dataset)"))
        cast(forms.Select, self.fields["column"].widget).choices = choices
        operators = export_filters.operators_for(self.logical_type) if self.logical_type else export_filters.OPERATORS
        operator_choices = [("", "—"), *operators.items()]
        if operator and operator not in operators and operator in export_filters.OPERATORS:
            operator_choices.append((operator, export_filters.OPERATORS[operator]))
        cast(forms.Select, self.fields["operator"].widget).choices = operator_choices
        self.fields["value"].widget = _value_widget(self.logical_type, operator)
        self.fields["value_to"].widget = _value_widget(self.logical_type, "between")
        for name, label in (("column", "Column"), ("operator", "Operator"), ("value", "Value"), ("value_to", "and")):
            self.fields[name].widget.attrs["aria-label"] = f"Filter {label.lower()}" if name != "value_to" else "and"
        self.needs_second_value = operator == "between" or not operator

    def _current(self, name: str) -> str:
        if self.is_bound:
            return str(self.data.get(self.add_prefix(name)) or "")
        return str(self.initial.get(name) or "")

    def _type(self, column: object) -> str | None:
        described = self.columns.get(str(column or ""))
        return described["type"] if described else None

    def as_spec(self) -> dict | None:
        data = self.cleaned_data
        if not data.get("column") and not data.get("operator"):
            return None
        # A textarea ("is one of") sends its lines with CRLF.
        value, value_to = (data.get(name, "").replace("\r\n", "\n") for name in ("value", "value_to"))
        if self.logical_type == "timestamp":  # typed in the user's time zone: stored in UTC
            value, value_to = _utc_text(value, self.zone), _utc_text(value_to, self.zone)
        return {
            "column": data.get("column", "").strip(),
            "operator": data.get("operator", ""),
            "value": value,
            "value_to": value_to,
        }


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _utc_text(text: str, zone: ZoneInfo) -> str:
    """Each date-time in `text` ("is one of": one per line or comma) that names no zone,
    read in `zone` and written in UTC; anything else as it was, for the validation."""

    def one(item: str) -> str:
        try:
            moment = export_filters.parse_moment(item)
        except ValueError:
            return item
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

    return "\n".join(one(item) for item in re.split(r"[,\n]", text)) if re.search(r"[,\n]", text) else one(text)


def _local_text(text: str, zone: ZoneInfo) -> str:
    """A stored date-time (UTC when it names no zone) as the picker shows it: in `zone`."""
    items = [item.strip() for item in re.split(r"[,\n]", text) if item.strip()]
    shown = []
    for item in items:
        try:
            moment = export_filters.parse_moment(item)
        except ValueError:
            return text
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        shown.append(moment.astimezone(zone).replace(tzinfo=None).isoformat(timespec="seconds"))
    return "\n".join(shown)


MAX_FILTERS = export_filters.MAX_FILTERS


class _FilterRows(forms.BaseFormSet):
    default_error_messages: ClassVar[dict[str, Any]] = {
        **forms.BaseFormSet.default_error_messages,
        "too_many_forms": f"Filters: at most {MAX_FILTERS}.",
    }


# validate_max and absolute_max: a post with more rows is refused, not read (the API's cap too).
FilterFormSet = forms.formset_factory(
    FilterForm, formset=_FilterRows, extra=3, max_num=MAX_FILTERS, validate_max=True, absolute_max=MAX_FILTERS
)


def filter_formset(data, dataset: Dataset | None, time_zone: str, initial: list[dict] | None = None):
    """The wizard's filter rows, knowing the dataset's columns and the user's time zone."""
    return FilterFormSet(
        data,
        prefix="filters",
        initial=initial,
        form_kwargs={"columns": dataset.columns if dataset else [], "time_zone": time_zone},
    )


def clean_filters(formset, dataset: Dataset | None) -> list[dict] | None:
    """Validate the filter rows against the dataset; errors go on the formset. None if invalid."""
    if not formset.is_valid():
        return None
    specs = [spec for form in formset.forms if (spec := form.as_spec()) is not None]
    if dataset is None:
        return specs
    try:
        export_filters.validate_filters(specs, dataset.columns)
    except ValidationError as exc:
        formset._non_form_errors = formset.error_class(exc.messages)
        return None
    return specs


# Sources ---------------------------------------------------------------------------------

SSL_MODES = [
    ("", "the driver's default (PostgreSQL: prefer; MySQL: no TLS)"),
    ("disable", "disable"),
    ("prefer", "prefer"),
    ("require", "require"),
    ("verify-ca", "verify-ca"),
    ("verify-full", "verify-full"),
]


class SourceForm(forms.Form):
    """A source database as people think of one: an engine, then a server (host, port,
    database, user, password, TLS mode) or a file. Saved as the connection URL the readers
    take (`url`), encrypted; the password is never shown again and kept when left blank."""

    ENGINES: ClassVar[list[tuple[str, str]]] = [
        ("postgresql", "PostgreSQL"),
        ("mysql", "MySQL or MariaDB"),
        ("sqlite", "SQLite file"),
        ("duckdb", "DuckDB file"),
    ]

    DEFAULT_PORTS: ClassVar[dict[str, int]] = {"postgresql": 5432, "mysql": 3306}

    name = forms.CharField(max_length=200)
    engine = forms.ChoiceField(choices=ENGINES)
    host = forms.CharField(max_length=253, required=False)
    port = forms.IntegerField(
        min_value=1, max_value=65535, required=False, help_text="Left blank: 5432 for PostgreSQL, 3306 for MySQL."
    )
    database = forms.CharField(max_length=200, required=False)
    user = forms.CharField(max_length=200, required=False)
    password = forms.CharField(
        max_length=500, required=False, widget=forms.PasswordInput(render_value=False), strip=False
    )
    sslmode = forms.ChoiceField(choices=SSL_MODES, required=False, label="TLS (sslmode)")
    path = forms.CharField(
        max_length=1000,
        required=False,
        help_text="A file in the folder of source files, e.g. crm.sqlite3 or analytics.duckdb",
    )

    def __init__(self, *args, files_dir: Path, current_url: str = "", **kwargs):
        # The sandbox's own folder of source files: one sandbox never opens another's.
        self.files_dir = files_dir
        self.current_url = current_url
        super().__init__(*args, **kwargs)
        if current_url and not self.is_bound:
            self.initial.update(self.fields_of(current_url))
        self.fields["password"].help_text = (
            "Left blank: the saved password is kept." if current_url else "Stored encrypted; never shown again."
        )

    def fields_of(self, url: str) -> dict[str, Any]:
        """The form's fields for a saved URL, never its password."""
        parts = urlsplit(url)
        if parts.scheme in {"sqlite", "duckdb"}:
            path = Path("/" + url.split(":", 1)[1].lstrip("/"))
            root = self.files_dir.resolve()
            shown = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
            return {"engine": parts.scheme, "path": shown}
        query = dict(parse_qsl(parts.query))
        engine = "mysql" if parts.scheme in {"mysql", "mariadb"} else "postgresql"
        return {
            "engine": engine,
            "host": parts.hostname or "",
            "port": parts.port or self.DEFAULT_PORTS[engine],
            "database": unquote(parts.path.lstrip("/")),
            "user": unquote(parts.username or ""),
            "sslmode": query.get("sslmode", ""),
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        engine = data.get("engine")
        if engine in {"sqlite", "duckdb"}:
            data["url"] = f"{engine}:///{self._file(data.get('path', ''))}"
        elif engine in self.DEFAULT_PORTS:
            data["url"] = self._server_url(engine, data)
        return data

    def _file(self, given: str) -> Path:
        """A file inside SOURCE_FILES_DIR: a sandbox's admin never reads the platform's
        own files (its database, its keys) through a source."""
        if not given.strip():
            self.add_error("path", "Give the database file's name in the folder of source files.")
            raise ValidationError("")
        kept = (
            self.fields_of(self.current_url).get("path")
            if self.current_url.startswith(("sqlite:", "duckdb:"))
            else None
        )
        if given.strip() == kept and not Path(kept).is_relative_to(self.files_dir.resolve()):
            # A file platform staff set up elsewhere (the demo): kept as it is, not chosen here.
            return Path(kept)
        root = self.files_dir.resolve()
        path = (root / given.strip()).resolve()
        if not path.is_relative_to(root) or path == root:
            self.add_error("path", f"The file must be in the folder of source files, {root}.")
            raise ValidationError("")
        if not path.is_file():
            self.add_error("path", f"There is no file {path.relative_to(root)} in the folder of source files.")
            raise ValidationError("")
        return path

    def _server_url(self, engine: str, data: dict[str, Any]) -> str:
        for name in ("host", "database", "user"):
            if not data.get(name):
                self.add_error(name, f"This field is required for a {dict(self.ENGINES)[engine]} server.")
        if engine == "mysql" and data.get("sslmode") in {"allow", "prefer", "verify-full"}:
            self.add_error(
                "sslmode",
                "For MySQL choose disable, require or verify-ca (verify-full would let the driver resolve the host "
                "again, past the address policy).",
            )
        host = data.get("host", "")
        if host:
            try:
                outbound.canonical(host)
            except outbound.AddressNotAllowed as exc:
                self.add_error("host", str(exc))
        if self.errors:
            raise ValidationError("")
        password = data.get("password") or ""
        port = data.get("port") or self.DEFAULT_PORTS[engine]
        if not password and self.current_url.startswith(("postgres://", "postgresql://", *MYSQL_SCHEMES)):
            # The saved password, only for the server and user it was given for: never
            # sent to another host (which could ask for it in clear and keep it).
            saved = self.fields_of(self.current_url)
            given = {**data, "engine": engine, "port": port}
            same = all(
                str(saved.get(name) or "") == str(given.get(name) or "") for name in ("engine", "host", "port", "user")
            )
            if same:
                password = unquote(urlsplit(self.current_url).password or "")
            elif urlsplit(self.current_url).password:
                self.add_error("password", "The server or user changed: type the password again.")
                raise ValidationError("")
        credentials = quote(data["user"], safe="")
        if password:
            credentials += ":" + quote(password, safe="")
        netloc_host = f"[{host}]" if ":" in host else host
        query = urlencode({"sslmode": data["sslmode"]}) if data.get("sslmode") else ""
        url = f"{engine}://{credentials}@{netloc_host}:{port}/{quote(data['database'], safe='')}"
        return f"{url}?{query}" if query else url
