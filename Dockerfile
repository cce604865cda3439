# histocr: the API and the CPU worker share this image.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       tesseract-ocr tesseract-ocr-deu tesseract-ocr-script-frak poppler-utils \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/histocr
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY models ./models
COPY frontend ./frontend
COPY migrations ./migrations
ARG EXTRAS=""
RUN pip install --no-cache-dir -e ".${EXTRAS}"

RUN useradd --create-home histocr && mkdir -p /data && chown histocr /data
USER histocr
ENV HISTOCR_DATA_DIR=/data HISTOCR_HOST=0.0.0.0
EXPOSE 8000
CMD ["histocr", "serve", "--no-worker"]
