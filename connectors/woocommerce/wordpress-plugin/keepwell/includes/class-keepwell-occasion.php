<?php
/**
 * The occasion question at checkout: what is it for, when, for whom, remind me next year?
 *
 * @package Keepwell
 */

defined( 'ABSPATH' ) || exit;

/**
 * Stores the answers as order meta (_keepwell_occasion, _keepwell_occasion_date,
 * _keepwell_occasion_for, _keepwell_occasion_remind), which order webhooks carry to Keepwell.
 */
class Keepwell_Occasion {

	/**
	 * Posted field => meta key.
	 *
	 * @var array<string, string>
	 */
	const FIELDS = array(
		'keepwell_occasion'        => Keepwell_Meta::OCCASION,
		'keepwell_occasion_date'   => Keepwell_Meta::OCCASION_DATE,
		'keepwell_occasion_for'    => Keepwell_Meta::OCCASION_FOR,
		'keepwell_occasion_remind' => Keepwell_Meta::OCCASION_REMIND,
	);

	/**
	 * Whether the store asks the question (option keepwell_ask_occasion, default yes).
	 *
	 * @return bool
	 */
	public static function enabled() {
		return 'no' !== get_option( 'keepwell_ask_occasion', 'yes' );
	}

	/**
	 * Hooks into the classic checkout.
	 */
	public static function init() {
		if ( ! self::enabled() ) {
			return;
		}
		add_action( 'woocommerce_after_order_notes', array( __CLASS__, 'checkout_fields' ) );
		add_action( 'woocommerce_checkout_create_order', array( __CLASS__, 'save_on_order' ), 10, 2 );
	}

	/**
	 * The occasions offered (option keepwell_occasions, comma-separated), value => label.
	 *
	 * @return array<string, string>
	 */
	public static function choices() {
		$labels  = explode( ',', (string) get_option( 'keepwell_occasions', __( 'Birthday, Anniversary, Wedding, Holiday, Other', 'keepwell' ) ) );
		$choices = array( '' => '—' );
		foreach ( $labels as $label ) {
			$label = trim( $label );
			if ( '' !== $label ) {
				$choices[ sanitize_title( $label ) ] = $label;
			}
		}
		return $choices;
	}

	/**
	 * The choices in the block checkout's select format.
	 *
	 * @return array<int, array<string, string>>
	 */
	public static function block_options() {
		$options = array();
		foreach ( self::choices() as $value => $label ) {
			if ( '' !== $value ) {
				$options[] = array(
					'value' => $value,
					'label' => $label,
				);
			}
		}
		return $options;
	}

	/**
	 * Prints the question below the order notes.
	 *
	 * @param WC_Checkout $checkout The checkout.
	 */
	public static function checkout_fields( $checkout ) {
		echo '<div class="keepwell-occasion"><h3>' . esc_html__( 'Is it for a special occasion?', 'keepwell' ) . '</h3>';
		woocommerce_form_field(
			'keepwell_occasion',
			array(
				'type'    => 'select',
				'label'   => esc_html__( 'Occasion', 'keepwell' ),
				'options' => self::choices(),
			),
			$checkout->get_value( 'keepwell_occasion' )
		);
		woocommerce_form_field(
			'keepwell_occasion_date',
			array(
				'type'  => 'date',
				'label' => esc_html__( 'Date', 'keepwell' ),
			),
			$checkout->get_value( 'keepwell_occasion_date' )
		);
		woocommerce_form_field(
			'keepwell_occasion_for',
			array(
				'type'              => 'text',
				'label'             => esc_html__( 'For whom', 'keepwell' ),
				'custom_attributes' => array( 'maxlength' => 80 ),
			),
			$checkout->get_value( 'keepwell_occasion_for' )
		);
		woocommerce_form_field(
			'keepwell_occasion_remind',
			array(
				'type'  => 'checkbox',
				'label' => esc_html__( 'Remind me a week before next year', 'keepwell' ),
			),
			$checkout->get_value( 'keepwell_occasion_remind' )
		);
		echo '</div>';
	}

	/**
	 * Saves the answers on the order; nothing is stored without a date.
	 *
	 * @param WC_Order $order The order being created.
	 * @param array    $data  The posted checkout data.
	 */
	public static function save_on_order( $order, $data ) {
		// phpcs:disable WordPress.Security.NonceVerification.Missing -- WooCommerce verified the checkout nonce.
		$date = isset( $_POST['keepwell_occasion_date'] ) ? Keepwell_Meta::clean_date( wp_unslash( $_POST['keepwell_occasion_date'] ) ) : '';
		if ( '' === $date ) {
			return;
		}
		$kind      = isset( $_POST['keepwell_occasion'] ) ? sanitize_title( wp_unslash( $_POST['keepwell_occasion'] ) ) : '';
		$recipient = isset( $_POST['keepwell_occasion_for'] ) ? sanitize_text_field( wp_unslash( $_POST['keepwell_occasion_for'] ) ) : '';
		$remind    = ! empty( $_POST['keepwell_occasion_remind'] );
		// phpcs:enable WordPress.Security.NonceVerification.Missing
		$order->update_meta_data( Keepwell_Meta::OCCASION, $kind );
		$order->update_meta_data( Keepwell_Meta::OCCASION_DATE, $date );
		$order->update_meta_data( Keepwell_Meta::OCCASION_FOR, mb_substr( $recipient, 0, 80 ) );
		$order->update_meta_data( Keepwell_Meta::OCCASION_REMIND, $remind ? 'yes' : 'no' );
	}
}
