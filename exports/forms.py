from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from connectors.models import Connector
from exports import filters as export_filters
from exports.engine import file_extension
from exports.layout import validate_template
from exports.models import Dataset, Export

DELIMITERS = [(",", "Comma ,"), (";", "Semicolon ;"), ("\t", "Tab"), ("|", "Pipe |")]
COMPRESSIONS_BY_FORMAT = {
    Export.Format.CSV: {"none", "gzip"},
    Export.Format.NDJSON: {"none", "gzip"},
    Export.Format.PARQUET: {"none", "snappy", "zstd", "gzip"},
}


class SourceStepForm(forms.ModelForm):
    """Wizard step 1: what to export."""

    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.filter(missing_since__isnull=True).select_related("database"),
        empty_label="Choose a dataset",
    )
    columns = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="None ticked: every column."
    )

    class Meta:
        model = Export
        fields = ["name", "dataset", "columns"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        dataset = self.chosen_dataset()
        if dataset is not None:
            self.fields["columns"].choices = [(c["name"], f"{c['name']} ({c['type']})") for c in dataset.columns]

    def chosen_dataset(self) -> Dataset | None:
        key = self.data.get(self.add_prefix("dataset")) if self.is_bound else self.initial.get("dataset")
        if key is None and self.instance.dataset_id:
            return self.instance.dataset
        if isinstance(key, Dataset):
            return key
        try:
            return self.fields["dataset"].queryset.get(pk=key)
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
        fields = ["file_format", "compression", "csv_delimiter", "csv_header", "rows_per_file", "file_template"]
        labels = {"csv_header": "CSV header row", "file_template": "File name template"}
        help_texts = {
            "compression": "CSV and NDJSON: none or gzip. Parquet: snappy (fastest), zstd, gzip or none.",
            "file_template": "Tokens: %EXPORT_NAME%, %DATASET_NAME%, %DATETIME(YYYYMMdd_HHmmss)%, "
            "%EXPORT_ID%, %DELIVERY_ID%. Files are named <template>-<part>.<extension>.",
        }

    def clean_file_template(self):
        template = self.cleaned_data["file_template"].strip()
        validate_template(template, allow_slashes=False)
        return template

    def clean(self):
        cleaned = super().clean()
        file_format, compression = cleaned.get("file_format"), cleaned.get("compression")
        if file_format and compression:
            if compression not in COMPRESSIONS_BY_FORMAT[file_format]:
                self.add_error("compression", f"{compression} is not available for {file_format.upper()} files")
            else:
                file_extension(file_format, compression)
        return cleaned


class DestinationStepForm(forms.ModelForm):
    """Wizard step 3: where the files go: a connector, or Desktop (a download)."""

    connector = forms.ModelChoiceField(
        queryset=Connector.objects.exclude(kind=Connector.Kind.DESKTOP).order_by("name"),
        required=False,
        empty_label="Desktop: download from the run report",
        label="Destination",
    )

    class Meta:
        model = Export
        fields = ["connector", "folder_template"]
        labels = {"folder_template": "Delivery folder template"}
        help_texts = {
            "folder_template": "For each run of a repeating export. Empty: the delivery GUID. Tokens: "
            "%DELIVERY_ID%, %EXPORT_NAME%, %DATASET_NAME%, %DATETIME(YYYYMMdd)%, %EXPORT_TIME%, "
            "%DESTINATION_INSTANCE_NAME%..."
        }

    def clean_folder_template(self):
        template = self.cleaned_data["folder_template"].strip()
        if template:
            validate_template(template, allow_slashes=True)
        return template


class ScheduleStepForm(forms.ModelForm):
    """Wizard step 4: when. Repeating exports come with the schedules issue."""

    class Meta:
        model = Export
        fields = ["export_type"]
        widgets = {"export_type": forms.RadioSelect}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["export_type"].choices = [(Export.Type.ONE_SHOT, Export.Type.ONE_SHOT.label)]
        self.fields["export_type"].help_text = "Periodic full and incremental exports are not available yet."


WIZARD_STEPS = {
    "source": ("Source", SourceStepForm),
    "file": ("File", FileStepForm),
    "destination": ("Destination", DestinationStepForm),
    "schedule": ("Schedule", ScheduleStepForm),
    "summary": ("Summary", None),
}


class FilterForm(forms.Form):
    column = forms.CharField(required=False, widget=forms.TextInput(attrs={"list": "dataset-columns"}))
    operator = forms.ChoiceField(choices=[("", "—")] + list(export_filters.OPERATORS.items()), required=False)
    value = forms.CharField(required=False, help_text="For 'is one of': comma-separated values.")
    value_to = forms.CharField(required=False, label="and")

    def as_spec(self) -> dict | None:
        data = self.cleaned_data
        if not data.get("column") and not data.get("operator"):
            return None
        return {
            "column": data.get("column", "").strip(),
            "operator": data.get("operator", ""),
            "value": data.get("value", ""),
            "value_to": data.get("value_to", ""),
        }


FilterFormSet = forms.formset_factory(FilterForm, extra=3, max_num=50)


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
